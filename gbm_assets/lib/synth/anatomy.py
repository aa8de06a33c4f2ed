"""Geometry and signal model behind `gbm_assets.lib.synth.phantom`: brain tissues, tumour, MRI contrasts.

Everything here works on a voxel grid in RAS voxel order (axis 0 left->right, axis 1
posterior->anterior, axis 2 inferior->superior) and in *nominal millimetres*: physical
millimetres divided by `Grid.scale`, so that the anatomy is always sized for an adult brain
(about 140 x 170 x 120 mm) and shrinks only when the field of view is too small for it.

Pure numpy/scipy, no I/O. All randomness comes from the `numpy.random.Generator` passed in,
drawn in a fixed order, so a seed fixes every voxel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Tissue / render classes (internal; canonical labels are derived from them).
BG, CSF, GM, WM, DGM, EDEMA, NONENH, NECROSIS, ENHANCING = range(9)
TISSUE_NAMES = ("background", "csf", "grey_matter", "white_matter", "deep_grey", "edema",
                "non_enhancing", "necrosis", "enhancing")
CANONICAL_OF_CLASS = np.array([0, 0, 0, 0, 0, 2, 1, 1, 3], dtype=np.uint8)

# Signal relative to white matter, per class (rows follow the class codes above).
#                     bg    csf   gm    wm   dgm   edema nonenh necro enh
RELATIVE_SIGNAL = {
    "t1":    np.array([0.0, 0.30, 0.78, 1.0, 0.86, 0.74, 0.66, 0.42, 0.80], np.float32),
    "t1c":   np.array([0.0, 0.33, 0.80, 1.0, 0.88, 0.77, 0.70, 0.45, 0.82], np.float32),
    "t2":    np.array([0.0, 2.70, 1.35, 1.0, 1.22, 2.00, 1.80, 2.30, 1.55], np.float32),
    "flair": np.array([0.0, 0.28, 1.25, 1.0, 1.12, 1.95, 1.80, 1.35, 1.55], np.float32),
}
WM_LEVEL = {"t1": 900.0, "t1c": 800.0, "t2": 420.0, "flair": 520.0}  # arbitrary scanner units
TEXTURE_AMPLITUDE = np.array([0, 0.02, 0.04, 0.03, 0.035, 0.05, 0.05, 0.05, 0.06], np.float32)
BRAIN_SEMI_AXES_MM = np.array([68.0, 84.0, 58.0])  # left-right, anterior-posterior, inferior-superior
BRAIN_RADIUS_MM = 62.0  # mean semi-axis, converts normalised depth to mm

# Where each lobe lies, as boxes in brain-normalised coordinates (|x|, y, z), each in [-1, 1].
LOBE_BOXES = {
    "frontal": ((0.15, 0.55), (0.35, 0.70), (-0.10, 0.50)),
    "temporal": ((0.45, 0.65), (-0.20, 0.35), (-0.50, -0.10)),
    "parietal": ((0.15, 0.55), (-0.50, 0.00), (0.15, 0.60)),
    "occipital": ((0.10, 0.45), (-0.75, -0.45), (-0.20, 0.30)),
}


@dataclass(frozen=True)
class Grid:
    """A voxel grid: `shape` (x, y, z) voxels, `spacing` in nominal mm, coords centred at 0."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    scale: float  # physical mm per nominal mm (<= 1)

    @classmethod
    def fitted(cls, shape: tuple[int, int, int], spacing_mm: tuple[float, float, float]) -> "Grid":
        """A grid whose nominal brain fits the field of view (brain <= 90% of each extent)."""
        fov = np.asarray(shape, float) * np.asarray(spacing_mm, float)
        scale = float(min(1.0, np.min(0.45 * fov / BRAIN_SEMI_AXES_MM)))
        return cls(tuple(int(n) for n in shape), tuple(float(s) / scale for s in spacing_mm), scale)

    def axes(self, lo: tuple[int, ...] = (0, 0, 0), hi: tuple[int, ...] | None = None):
        """Broadcastable nominal-mm coordinates (x[:, None, None], y[None, :, None], z[None, None, :])."""
        hi = hi or self.shape
        out = []
        for d in range(3):
            v = (np.arange(lo[d], hi[d], dtype=np.float32) - (self.shape[d] - 1) / 2) * self.spacing[d]
            out.append(v.reshape([-1 if k == d else 1 for k in range(3)]))
        return tuple(out)

    def to_voxel(self, point_mm: np.ndarray) -> np.ndarray:
        return np.asarray(point_mm) / np.asarray(self.spacing) + (np.asarray(self.shape) - 1) / 2


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], spacing: tuple[float, ...],
                 sigma_mm: float) -> np.ndarray:
    """Gaussian-correlated noise, zero mean and unit std, float32 of `shape`.

    Made on a grid coarser by up to 0.75 * sigma, smoothed there, and linearly zoomed up, so
    its cost is near that of one pass over the output.
    """
    step = [max(1, int(0.75 * sigma_mm / s)) for s in spacing]
    coarse = tuple(int(np.ceil(n / f)) + 2 for n, f in zip(shape, step))
    field = ndimage.gaussian_filter(rng.standard_normal(coarse, dtype=np.float32),
                                    [sigma_mm / (s * f) for s, f in zip(spacing, step)], mode="wrap")
    if coarse != tuple(shape):
        field = ndimage.zoom(field, [n / c for n, c in zip(shape, coarse)], order=1, grid_mode=False)
    field -= field.mean()
    field /= field.std() + 1e-12
    return field


def _ellipsoid(x, y, z, centre, semi) -> np.ndarray:
    return ((x - centre[0]) / semi[0]) ** 2 + ((y - centre[1]) / semi[1]) ** 2 + ((z - centre[2]) / semi[2]) ** 2


def brain_tissues(rng: np.random.Generator, grid: Grid, age: float) -> tuple[np.ndarray, np.ndarray]:
    """Draw a brain: tissue classes (uint8, grid.shape) and the brain's semi-axes (nominal mm).

    Cortical ribbon with sulci (the zero level set of band-limited noise), sulcal and fissure
    CSF, two lateral ventricles and a third, deep grey nuclei, white matter. Older brains get
    wider ventricles and sulci.
    """
    x, y, z = grid.axes()
    semi = BRAIN_SEMI_AXES_MM * (1 + 0.03 * rng.standard_normal(3))
    wide = semi[0] * (1 - 0.07 * y / semi[1])  # an egg: wider at the back
    low = z < 0
    r = np.sqrt((x / wide) ** 2 + (y / semi[1]) ** 2 + (z / (semi[2] * np.where(low, 0.9, 1.0))) ** 2)
    r *= 1 + 0.025 * smooth_noise(rng, grid.shape, grid.spacing, 14.0)
    depth = ((1 - r) * BRAIN_RADIUS_MM).astype(np.float32)
    brain = depth > 0
    atrophy = float(np.clip((age - 40) / 45, 0, 1))
    sulcus = smooth_noise(rng, grid.shape, grid.spacing, 3.5)
    sulcus_depth = 13 + 4 * smooth_noise(rng, grid.shape, grid.spacing, 20.0)
    tissue = np.full(grid.shape, WM, np.uint8)
    core = _ellipsoid(x, y, z, (0, -2, 4), (32, 48, 26)) < 1  # ventricles, callosum, nuclei
    mid = np.abs(x - 1.5 * np.sin(y / 25 + rng.uniform(0, 2 * np.pi)))  # distance to a wavy midline
    tissue[(depth < 3.0) | ((np.abs(sulcus) < 0.9) & (depth < sulcus_depth + 2.5)) | ((mid < 4.5) & ~core)] = GM
    for side in (-1, 1):
        for c, s in (((9, -10, 2), (7, 11, 8)), ((20, 6, 0), (6, 13, 9)), ((11, 18, 10), (4, 9, 7))):
            tissue[_ellipsoid(x, y, z, (side * c[0], c[1], c[2]), s) < 1] = DGM
    csf = (depth < 0.8 + 1.2 * atrophy) | ((np.abs(sulcus) < 0.2 + 0.1 * atrophy) & (depth < sulcus_depth))
    csf |= (mid < 1.2 + 0.6 * atrophy) & ~core
    vs = 1 + 0.6 * atrophy + 0.08 * rng.standard_normal()
    bend = 11 - 0.006 * (y - 2) ** 2
    lateral_x = np.abs(x) - (9 - 0.08 * y + 0.004 * (y - 2) ** 2) - 1.5 * vs  # butterfly: horns diverge
    lateral = _ellipsoid(lateral_x, y, z - bend, (0, 0, 0), (4 * vs, 28, 7 * vs)) < 1
    csf |= lateral & (mid > 1.5)
    csf |= _ellipsoid(x, y, z, (0, -4, 0), (1.0 * vs, 14, 9)) < 1  # third ventricle
    tissue[csf] = CSF
    tissue[~brain] = BG
    return tissue, semi


def tumour_centre(rng: np.random.Generator, semi: np.ndarray, lobe: str, hemisphere: int,
                  reach_mm: float) -> np.ndarray:
    """A tumour centre (nominal mm) in `lobe` of one hemisphere (-1 left, +1 right), moved
    towards the brain centre until it lies at least `reach_mm` below the ellipsoidal surface."""
    p = np.array([rng.uniform(*b) for b in LOBE_BOXES[lobe]]) * np.array([hemisphere, 1, 1])
    for _ in range(50):
        if (1 - np.linalg.norm(p)) * BRAIN_RADIUS_MM >= reach_mm or np.linalg.norm(p) < 0.12:
            break
        p *= 0.95
    return p * semi


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.standard_normal(4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([[a*a+b*b-c*c-d*d, 2*(b*c-a*d), 2*(b*d+a*c)],
                     [2*(b*c+a*d), a*a-b*b+c*c-d*d, 2*(c*d-a*b)],
                     [2*(b*d-a*c), 2*(c*d+a*b), a*a-b*b-c*c+d*d]])


@dataclass
class Tumour:
    """Tumour maps inside a bounding box `box` (tuple of slices into the grid)."""

    box: tuple[slice, slice, slice]
    classes: np.ndarray  # uint8: EDEMA / NONENH / NECROSIS / ENHANCING, or 0 where not tumour
    edema_weight: np.ndarray  # float32 in [0, 1]: 1 next to the core, fading outwards
    uptake: np.ndarray  # float32 >= 0: extra T1c signal of enhancing voxels (relative to WM)
    texture: np.ndarray  # float32 unit-std noise for tumour heterogeneity


def grow_tumour(rng: np.random.Generator, grid: Grid, tissue: np.ndarray, centre: np.ndarray,
                p: dict) -> Tumour:
    """Grow a tumour at `centre` (nominal mm) with phenotype `p` (radius_mm, necrosis_fraction,
    rim_mm, enhancing_fraction, uptake, edema_mm, irregularity). Voxels outside the brain are never
    tumour; every one of necrotic core, edema and enhancing gets at least one voxel."""
    radius, edema_mm = p["radius_mm"], p["edema_mm"]
    reach = radius * 1.4 + edema_mm * 1.8 + 3
    c_vox = grid.to_voxel(centre)
    half = reach / np.asarray(grid.spacing)
    lo = tuple(int(max(0, np.floor(c - h))) for c, h in zip(c_vox, half))
    hi = tuple(int(min(n, np.ceil(c + h) + 1)) for c, h, n in zip(c_vox, half, grid.shape))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    shape = tuple(b - a for a, b in zip(lo, hi))
    x, y, z = grid.axes(lo, hi)
    rot = _rotation(rng) * (1 + 0.15 * rng.standard_normal(3)).clip(0.75, 1.3)[None, :]
    inv = np.linalg.inv(rot)
    d = [x - centre[0], y - centre[1], z - centre[2]]
    rho = np.sqrt(sum((inv[k, 0] * d[0] + inv[k, 1] * d[1] + inv[k, 2] * d[2]) ** 2 for k in range(3)))
    irr = p["irregularity"]
    noise = lambda s: smooth_noise(rng, shape, grid.spacing, s)  # noqa: E731
    rho_core = rho * (1 + irr * noise(0.35 * radius))
    rho_nec = rho * (1 + 1.5 * irr * noise(0.25 * radius))
    patch, texture, edema_noise = noise(3.0), noise(1.5), noise(6.0)
    local = tissue[box]
    inside = local != BG
    core = (rho_core < radius) & inside
    necrotic = core & (rho_nec < p["necrosis_fraction"] * radius)
    shell = core & (rho_core > radius - p["rim_mm"]) & ~necrotic
    enh = shell & (patch > np.quantile(patch[shell], 1 - p["enhancing_fraction"])) if shell.any() else shell
    excess = rho_core - radius
    spread = edema_mm * np.exp(0.45 * edema_noise) * np.where(local == GM, 0.35, 1.0)
    edema = inside & ~core & (excess < spread) & (local != CSF)
    pieces, _ = ndimage.label(edema | core)
    edema &= np.isin(pieces, np.unique(pieces[core]))  # edema touches the tumour: no islands
    classes = np.zeros(shape, np.uint8)
    classes[edema] = EDEMA
    classes[core] = NONENH
    classes[necrotic] = NECROSIS
    classes[enh] = ENHANCING
    _ensure_labels(classes, rho_core, inside)
    weight = np.clip(1 - excess / np.maximum(spread, 1e-3), 0, 1).astype(np.float32)
    uptake = (p["uptake"] * (0.65 + 0.35 * np.tanh(patch))).astype(np.float32)
    return Tumour(box, classes, weight, uptake, texture)


def _ensure_labels(classes: np.ndarray, rho: np.ndarray, inside: np.ndarray) -> None:
    """Guarantee at least one voxel each of core (1), edema (2), enhancing (3), in place."""
    order = np.argsort(np.where(inside, rho, np.inf), axis=None)
    order = order[: max(int(inside.sum()), 3)]
    if not np.isin(classes, (NONENH, NECROSIS)).any():
        classes.flat[order[0]] = NECROSIS
    if not (classes == ENHANCING).any():
        tumour = np.flatnonzero(np.isin(classes.ravel()[order], (NONENH, NECROSIS)))
        classes.flat[order[tumour[-1] if tumour.size > 1 else 1]] = ENHANCING
    if not (classes == EDEMA).any():
        free = np.flatnonzero(classes.ravel()[order] == 0)
        classes.flat[order[free[0] if free.size else 2]] = EDEMA


def render(rng: np.random.Generator, grid: Grid, tissue: np.ndarray, tumour: Tumour,
           p: dict, noise: float, bias: float) -> dict[str, np.ndarray]:
    """Render T1, T1c, T2, FLAIR (float32, grid.shape) from the class map.

    Signal per class from `RELATIVE_SIGNAL`, graded edema, patchy T1c uptake, tumour
    heterogeneity `p["heterogeneity"]`, mild tissue texture, partial-volume blur, one smooth
    multiplicative bias field shared by the sequences (within exp(+-bias)), Rician noise of std
    `noise` x white-matter signal, rounded to whole scanner units (as scanners store them, and
    so they compress well). Zero outside the brain (skull-stripped, as in BraTS).
    """
    classes = tissue.copy()
    t = tumour.classes
    classes[tumour.box][t > 0] = t[t > 0]
    tissue_tex = smooth_noise(rng, grid.shape, grid.spacing, 2.0)
    texture = 1 + TEXTURE_AMPLITUDE[classes] * tissue_tex
    tumour_cls = t >= NONENH
    texture[tumour.box][tumour_cls] *= 1 + p["heterogeneity"] * tumour.texture[tumour_cls]
    x, y, z = grid.axes()
    field = np.zeros(grid.shape, np.float32)
    for _ in range(3):
        k = rng.normal(0, 2 * np.pi / 260, 3)
        field += np.cos(k[0] * x + k[1] * y + k[2] * z + rng.uniform(0, 2 * np.pi))
    field -= field.mean()
    field = np.exp(bias * field / (np.abs(field).max() + 1e-6))
    brain = tissue != BG
    edema = t == EDEMA
    images = {}
    for seq, rel in RELATIVE_SIGNAL.items():
        level = WM_LEVEL[seq] * float(np.exp(0.08 * rng.standard_normal()))
        img = rel[classes] * (1 + 0.02 * rng.standard_normal(len(rel))).astype(np.float32)[classes]
        sub = img[tumour.box]
        sub[edema] = 1 + (sub[edema] - 1) * (0.45 + 0.55 * tumour.edema_weight[edema])
        if seq == "t1c":
            sub[t == ENHANCING] += tumour.uptake[t == ENHANCING]
        img = ndimage.gaussian_filter(img * texture, 0.5)
        signal = img[brain] * field[brain] * level
        sigma = noise * level
        n1 = rng.standard_normal(signal.shape, dtype=np.float32)
        n2 = rng.standard_normal(signal.shape, dtype=np.float32)
        out = np.zeros(grid.shape, np.float32)
        out[brain] = np.round(np.sqrt((signal + sigma * n1) ** 2 + (sigma * n2) ** 2))
        images[seq] = out
    return images
