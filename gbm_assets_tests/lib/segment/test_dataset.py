"""Lazy training slices (issue 10): the same rows, batches, weights and metrics as the eager copy they
replace, in memory that does not grow with the number of patients; bad files fail clearly.

The eager loader and evaluation below are the pre-issue-10 implementations, kept here only as the
reference the lazy path must reproduce bit for bit (the demo's README numbers rest on it)."""

from __future__ import annotations

import pickle
import weakref
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from gbm_assets.lib.masks.postprocess import POSTPROCESS, postprocess_mask
from gbm_assets.lib.preprocess.slices import SliceConfig, write_slice_arrays
from gbm_assets.lib.preprocess.volumes import (
    PreprocessConfig,
    load_preprocessed,
    preprocess_patient,
    save_preprocessed,
)
from gbm_assets.lib.segment.dataset import (
    SliceRows,
    iter_chunks,
    load_slice_data,
    require_trainable,
)
from gbm_assets.lib.segment.evaluate import (
    PATIENT_COLUMNS,
    evaluate_model,
    patient_volume_row,
    volume_metric_rows,
)
from gbm_assets.lib.segment.inference import predict_volume
from gbm_assets.lib.segment.metrics import confusion_counts, pixel_metrics
from gbm_assets.lib.segment.train import TrainConfig, train_unet
from gbm_assets.lib.segment.unet import UNet
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tables import read_parquet
from gbm_assets_tests.lib.preprocess import RAS_1MM, synthetic_case

SPLITS = ("train", "validation", "test")
CONFIG = TrainConfig(base=4, epochs=2, batch_size=4, lr=1e-2, seed=3, augment=True, device="cpu")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> DataRoot:
    """Two cohorts ("b" before "a" on disk) of five 32 x 32 patients each, preprocessed, with their slice
    arrays and indexes; `patients.parquet` splits them across cohorts."""
    root = DataRoot(tmp_path_factory.mktemp("slices"))
    rows = []
    for c, cohort in enumerate(["b", "a"]):
        plan = []
        for i in range(5):
            pid = f"{cohort}{i}"
            patient = preprocess_patient(*synthetic_case((40, 40, 8 + i), RAS_1MM, seed=10 * c + i), PreprocessConfig(size=32))
            plan.append((cohort, pid, save_preprocessed(patient, root.volume_dir("preprocessed", cohort, pid)), "train"))
            rows.append((cohort, pid, SPLITS[[0, 0, 1, 2, 0][(i + c) % 5]]))
        index, _ = write_slice_arrays(root.volume_dir("training_slices", cohort), plan, SliceConfig(lesion_free_fraction=0.5))
        root.table_file("training_slices", cohort).parent.mkdir(parents=True, exist_ok=True)
        index.to_parquet(root.table_file("training_slices", cohort))
    pd.DataFrame(rows, columns=["cohort", "patient_id", "split"]).to_parquet(root.root / "patients.parquet")
    return root


@pytest.fixture(scope="module")
def patients(root) -> pd.DataFrame:
    return pd.read_parquet(root.root / "patients.parquet")


def eager_load(root: DataRoot, patients: pd.DataFrame, input_name: str, splits=("train", "validation")):
    """The pre-issue-10 `load_slice_data`: every row copied into RAM and concatenated -> (x, y, index) per split."""
    parts: dict[str, list] = {s: [] for s in splits}
    wanted = patients[patients["split"].isin(list(splits))]
    for cohort in sorted(set(wanted["cohort"])):
        split_of = wanted[wanted["cohort"] == cohort].set_index("patient_id")["split"]
        folder = root.volume_dir("training_slices", cohort)
        index = read_parquet(root.table_file("training_slices", cohort))
        index = index[index["patient_id"].isin(split_of.index)]
        index = index.assign(split=index["patient_id"].map(split_of))
        x, y = np.load(folder / f"{input_name}_x.npy", mmap_mode="r"), np.load(folder / "y.npy", mmap_mode="r")
        for split in splits:
            rows = index[index["split"] == split].sort_values("row")
            if not rows.empty:
                take = rows["row"].to_numpy()
                parts[split].append((np.asarray(x[take], dtype=np.float32), np.asarray(y[take]) > 0, rows.reset_index(drop=True)))
    return {s: (np.concatenate([c[0] for c in p]), np.concatenate([c[1] for c in p]), pd.concat([c[2] for c in p], ignore_index=True))
            for s, p in parts.items() if p}  # fmt: skip


def eager_metrics(model, input_name, eager, load_patient, settings=POSTPROCESS):
    """The pre-issue-10 `evaluate_model` numbers: every volume predicted and held, pooled pixel counts."""
    pixel, predicted = [], {}
    for split, (_, y, index) in eager.items():
        pats = index[["cohort", "patient_id"]].drop_duplicates().itertuples(index=False)
        predicted[split] = [(c, p, pt, predict_volume(model, pt, input_name, 64)) for c, p in pats for pt in [load_patient(c, p)]]
        vols = {(c, p): v for c, p, _, v in predicted[split]}
        prob = np.stack([vols[(c, p)][..., z] for c, p, z in index[["cohort", "patient_id", "slice"]].itertuples(index=False)])
        pixel += [(input_name, split, k, v) for k, v in pixel_metrics(*confusion_counts(prob > settings.threshold, y)).items()]

    def rows(split, keep):
        return [patient_volume_row(input_name, split, c, p, postprocess_mask(v, pt.spacing, settings.threshold, settings.min_component_mm3, keep),
                                   pt.labels > 0, pt.spacing) for c, p, pt, v in predicted[split]]  # fmt: skip

    keep = False
    if predicted.get("validation"):
        dice = {k: np.mean([r[4] for r in rows("validation", k)]) for k in (False, True)}
        keep = bool(dice[True] > dice[False])
    columns = [c for c in PATIENT_COLUMNS if c != "region"]
    per_patient = pd.DataFrame([r[:8] + r[9:] for s in predicted for r in rows(s, keep)], columns=columns)
    volume = volume_metric_rows(per_patient.assign(region="whole_tumor")).drop(columns="region")
    metrics = pd.concat([pd.DataFrame(pixel, columns=["sequence", "split", "metric", "value"]), volume], ignore_index=True)
    return metrics.sort_values(["split", "metric"], ignore_index=True), per_patient


def test_lazy_views_hold_the_eager_rows(root, patients):
    lazy, eager = load_slice_data(root, patients, "stack", SPLITS), eager_load(root, patients, "stack", SPLITS)
    assert list(lazy.x) == list(eager) == list(SPLITS) and {"a", "b"} <= set(lazy.index["train"]["cohort"])
    for split, (x, y, index) in eager.items():
        lx, ly = lazy.x[split], lazy.y[split]
        assert isinstance(lx, SliceRows) and lx.shape == x.shape and ly.shape == y.shape and lx.dtype == x.dtype and ly.dtype == y.dtype
        pd.testing.assert_frame_equal(lazy.index[split], index)
        assert np.array_equal(lx[:], x) and np.array_equal(np.asarray(ly), y)
        picks = np.random.default_rng(0).permutation(len(x))[: max(2, len(x) // 2)]  # unsorted, across cohorts
        assert np.array_equal(lx[picks], x[picks]) and np.array_equal(ly[picks], y[picks])
        assert np.array_equal(lx[-1], x[-1]) and np.array_equal(lx[1:-1:2], x[1:-1:2]) and np.array_equal(lx[picks, 0], x[picks, 0])
        assert np.array_equal(lx[y.any(axis=(1, 2))], x[y.any(axis=(1, 2))])
        assert np.array_equal(np.concatenate(list(iter_chunks(lx, 3))), x)
    with pytest.raises(IndexError):
        lazy.x["train"][[len(eager["train"][0])]]


@pytest.fixture(scope="module")
def eager_trained(root, patients):
    eager = eager_load(root, patients, "stack")
    return train_unet(eager["train"][0], eager["train"][1], eager["validation"][0], eager["validation"][1], CONFIG)


def lazy_trained(root, patients, config: TrainConfig):
    lazy = load_slice_data(root, patients, "stack")
    return train_unet(lazy.x["train"], lazy.y["train"], lazy.x["validation"], lazy.y["validation"], config)


def assert_same_weights(a, b) -> None:
    assert a.history[-1]["train_loss"] == b.history[-1]["train_loss"]
    assert a.best_state.keys() == b.best_state.keys() and all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)


def test_lazy_training_gives_bit_identical_weights(root, patients, eager_trained):
    assert_same_weights(lazy_trained(root, patients, CONFIG), eager_trained)
    with pytest.raises(AssertionError):  # the comparison can fail: another seed, other weights
        assert_same_weights(lazy_trained(root, patients, replace(CONFIG, seed=4, epochs=1)), eager_trained)


@pytest.mark.slow
def test_dataloader_workers_do_not_change_the_weights(root, patients, eager_trained):
    assert_same_weights(lazy_trained(root, patients, replace(CONFIG, num_workers=2)), eager_trained)  # workers only read


def test_streamed_evaluation_gives_the_eager_numbers_holding_one_patient(root, patients):
    torch.manual_seed(0)
    data = load_slice_data(root, patients, "stack", SPLITS)
    model = UNet(data.x["train"].shape[1], base=4).eval()
    live, most = [0], [0]

    def load(cohort, pid):
        patient = load_preprocessed(root.volume_dir("preprocessed", cohort, pid))
        live[0] += 1
        most[0] = max(most[0], live[0])
        weakref.finalize(patient, lambda: live.__setitem__(0, live[0] - 1))
        return patient

    result = evaluate_model(model, "stack", data, load)
    assert most[0] <= 2, f"{most[0]} patients' volumes were alive at once; evaluation must stream them"
    most[0] = 0
    metrics, per_patient = eager_metrics(model, "stack", eager_load(root, patients, "stack", SPLITS), load)
    assert most[0] == 10  # the reference holds them all: the count above can fail
    assert set(result.metrics["region"]) == set(result.per_patient["region"]) == {"whole_tumor"}  # a binary model: whole tumour only
    pd.testing.assert_frame_equal(result.metrics.drop(columns="region"), metrics, check_exact=True)
    pd.testing.assert_frame_equal(result.per_patient.drop(columns="region"), per_patient, check_exact=True)
    assert list(result.pictures) == [f"{s}_{n}" for s in SPLITS for n in ("overlay.png", "slices.gif")]


def test_a_view_is_read_on_demand_and_travels_without_its_rows(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2000, 1, 16, 16), np.float32))
    view = SliceRows([(path, np.arange(2000))])
    assert len(pickle.dumps(view)) < 20_000  # 2 MB of rows: a worker gets the index (8 bytes a row), not the data
    mm = np.load(path, mmap_mode="r+")
    mm[1234] = 7.0
    mm.flush()
    del mm
    assert view[1234].max() == 7.0 and pickle.loads(pickle.dumps(view))[1234].max() == 7.0


def test_bad_slice_files_fail_naming_the_file(tmp_path):
    a, b = tmp_path / "a_x.npy", tmp_path / "b_x.npy"
    np.save(a, np.zeros((3, 1, 16, 16), np.float32))
    np.save(b, np.zeros((3, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match="b_x.npy.*a_x.npy.*in-plane size"):
        SliceRows([(a, np.arange(3)), (b, np.arange(3))])
    with pytest.raises(ValueError, match="a_x.npy has 3 rows"):
        SliceRows([(a, np.array([0, 5]))])
    view = SliceRows([(a, np.arange(3))])
    with open(a, "r+b") as f:  # another process truncated it after the index was built
        f.truncate(a.stat().st_size - 100)
    with pytest.raises(OSError, match="a_x.npy: row 2 is truncated"):
        view[2]


def test_missing_arrays_and_lesion_free_training_fail_clearly(root, patients, tmp_path):
    with pytest.raises(FileNotFoundError, match="cohort a: .*nosuch_x.npy is missing"):
        load_slice_data(root, patients, "nosuch")
    empty = DataRoot(tmp_path)
    with pytest.raises(FileNotFoundError, match="cohort a"):
        load_slice_data(empty, patients, "stack")
    data = load_slice_data(root, patients, "stack")
    require_trainable(data)
    y = tmp_path / "y.npy"
    np.save(y, np.zeros((4, 32, 32), np.uint8))
    data.y["train"] = SliceRows([(y, np.arange(4))], "y")
    with pytest.raises(ValueError, match="no lesion pixels"):
        require_trainable(data)


def test_a_region_model_is_scored_per_region_on_canonical_labels(root, patients):
    torch.manual_seed(0)
    data = load_slice_data(root, patients, "stack", SPLITS, labels=True)
    assert data.y["train"].dtype == np.uint8 and set(np.unique(data.y["train"][:])) == {0, 1, 2, 3}
    model = UNet(data.x["train"].shape[1], base=4, out_channels=3).eval()
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([4.0, -4.0, -4.0]))  # WT on everywhere, TC and ET off: edema everywhere

    def load(cohort, pid):
        return load_preprocessed(root.volume_dir("preprocessed", cohort, pid))

    result = evaluate_model(model, "stack", data, load)
    regions = ["whole_tumor", "tumor_core", "enhancing"]
    for split in SPLITS:
        part = result.metrics[result.metrics["split"] == split]
        assert part["region"].unique().tolist() == regions and len(part) == 3 * 12  # 7 pixel, 2 volume, 3 lesion-wise
    assert len(result.per_patient) == 3 * 10 and set(result.per_patient["region"]) == set(regions)
    enhancing = result.per_patient[result.per_patient["region"] == "enhancing"]  # predicted nowhere: every lesion missed
    assert (enhancing["lesions_matched"] == 0).all() and (enhancing["lesionwise_dice"] == 0).all()
    assert (enhancing["lesions_reference"] > 0).all() and (enhancing["lesion_f1"] == 0).all()
    dice = result.per_patient.groupby("region")["dice_3d"].mean()
    assert dice["whole_tumor"] < 1 and dice["enhancing"] < 1
    sensitivity = result.metrics.query("metric == 'sensitivity'").groupby("region")["value"].agg(["min", "max"])
    assert sensitivity.loc["whole_tumor", "min"] == 1 and sensitivity.loc[["tumor_core", "enhancing"], "max"].eq(0).all()


def test_binary_labelled_patients_are_scored_and_trained_only_on_whole_tumour(root, patients, tmp_path):
    """A cohort whose truth is a binary mask (label scheme `binary`: whole tumour only) must not teach a region model
    "no tumour core", nor be scored on core and enhancing against an empty truth."""
    import shutil

    copy = DataRoot(tmp_path / "root")
    shutil.copytree(root.root, copy.root)
    index_file = copy.table_file("training_slices", "a")
    index = read_parquet(index_file)
    binary = {"a0", "a1", "a2"}  # a0 train, a1 test, a2 validation (see `root`)
    index["label_regions"] = np.where(index["patient_id"].isin(binary), "whole_tumor", "whole_tumor,tumor_core,enhancing")
    index.to_parquet(index_file)

    data = load_slice_data(copy, patients, "stack", SPLITS, labels=True, require_regions=("whole_tumor", "tumor_core", "enhancing"))
    assert {(c, p) for c, p, _ in data.excluded} == {("a", p) for p in binary}
    assert all("lack tumor_core, enhancing" in reason for _, _, reason in data.excluded)
    assert not set(pd.concat(data.index.values())["patient_id"]) & binary
    kept = load_slice_data(copy, patients, "stack", SPLITS, labels=True)  # scoring: every patient, no requirement
    assert set(pd.concat(kept.index.values())["patient_id"]) >= binary and not kept.excluded

    model = UNet(kept.x["train"].shape[1], base=4, out_channels=3).eval()
    result = evaluate_model(model, "stack", kept, lambda c, p: load_preprocessed(copy.volume_dir("preprocessed", c, p)))
    scored = result.per_patient.groupby("patient_id")["region"].agg(set)
    assert all(scored[p] == {"whole_tumor"} for p in binary)
    assert all(scored[p] == {"whole_tumor", "tumor_core", "enhancing"} for p in scored.index if p not in binary)

    index["label_regions"] = "whole_tumor"  # a cohort labelled with binary masks only: no core or enhancing rows at all
    index.to_parquet(index_file)
    only_binary = load_slice_data(copy, patients[patients["cohort"] == "a"], "stack", SPLITS, labels=True)
    result = evaluate_model(model, "stack", only_binary, lambda c, p: load_preprocessed(copy.volume_dir("preprocessed", c, p)))
    assert set(result.metrics["region"]) == {"whole_tumor"} and set(result.per_patient["region"]) == {"whole_tumor"}
