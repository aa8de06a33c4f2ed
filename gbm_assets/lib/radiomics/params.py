"""PyRadiomics parameter files: load, validate with PyRadiomics' own schema, fingerprint.

Validation is PyRadiomics' own: pykwalify against `radiomics/schemas/paramSchema.yaml` with the
schema functions PyRadiomics ships (`radiomics.getParameterValidationFiles()`), exactly what
`RadiomicsFeatureExtractor(path)` runs. It happens in `load_params`, before any image is read, so
an unknown or misspelt setting fails a run at once with the file named.

A validated file becomes a `RadiomicsParams`: its path, the sha256 of its bytes, and the parsed
sections (`setting`, `imageType`, `featureClass`). `provenance` records the versions and settings
once per run; the parameter file ships `additionalInfo: false` so PyRadiomics does not repeat them
(with image hashes) in every call.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import platform
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_PARAMS_NAME = "radiomics.yaml"


class ParameterFileError(ValueError):
    """A PyRadiomics parameter file (or dict) that PyRadiomics' schema rejects, or that is unreadable."""


def default_params_path() -> Path:
    """Path of the shipped `gbm_assets/config/radiomics.yaml`."""
    return Path(str(resources.files("gbm_assets").joinpath("config", DEFAULT_PARAMS_NAME)))


@contextlib.contextmanager
def _quiet_pykwalify() -> Iterator[None]:
    """pykwalify logs every schema error at ERROR before raising; the exception carries them anyway."""
    log = logging.getLogger("pykwalify")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def validate_params(params: Mapping[str, Any] | None = None, *, path: str | Path | None = None) -> dict[str, Any]:
    """Validate a parameter dict, or the file at `path`, with PyRadiomics' schema.

    Args:
        params: a dict with the sections `setting`, `imageType`, `featureClass`, `voxelSetting`.
        path: a YAML or JSON parameter file (used when `params` is None).

    Returns:
        The parsed, validated parameters (a new dict).

    Raises:
        ParameterFileError: the schema rejects it; the message names the source and quotes
            PyRadiomics' reasons (e.g. "Key 'binWidht' was not defined. Path: '/setting'").
    """
    import pykwalify.core
    import radiomics

    source = str(path) if params is None else "<parameter dict>"
    schema_file, schema_funcs = radiomics.getParameterValidationFiles()
    if params is None and path is None:
        raise TypeError("validate_params needs params or path")
    if params is None:
        data = {"source_file": str(path)}
    else:
        data = {"source_data": copy.deepcopy(dict(params))}
    try:
        with _quiet_pykwalify():
            core = pykwalify.core.Core(**data, schema_files=[schema_file], extensions=[schema_funcs])
            validated = core.validate()
    except Exception as exc:  # pykwalify raises SchemaError, CoreError, ValueError or TypeError
        reason = getattr(exc, "msg", None) or str(exc)
        raise ParameterFileError(
            f"{source}: not a valid PyRadiomics {radiomics.__version__} parameter file: {reason}"
        ) from exc
    return dict(validated or {})


@dataclass(frozen=True)
class RadiomicsParams:
    """A validated parameter file.

    Attributes:
        path: the file, absolute.
        sha256: hex sha256 of the file's bytes (what a run records as its parameter version).
        params: the validated sections, as PyRadiomics parsed them.
    """

    path: Path
    sha256: str
    params: Mapping[str, Any]

    @property
    def settings(self) -> dict[str, Any]:
        """Effective settings: PyRadiomics' defaults updated with the file's `setting` section."""
        from radiomics.featureextractor import RadiomicsFeatureExtractor

        merged = RadiomicsFeatureExtractor._getDefaultSettings()
        merged.update(self.params.get("setting") or {})
        return merged

    @property
    def image_types(self) -> dict[str, dict]:
        """Enabled image types and their custom settings (Original only when the file names none)."""
        return {k: dict(v or {}) for k, v in (self.params.get("imageType") or {"Original": {}}).items()}

    @property
    def feature_classes(self) -> dict[str, list[str] | None]:
        """Enabled feature classes -> enabled feature names (None: all)."""
        return dict(self.params.get("featureClass") or {})

    def extractor(self):
        """A fresh `RadiomicsFeatureExtractor` configured from the validated parameters."""
        from radiomics.featureextractor import RadiomicsFeatureExtractor

        with _quiet_pykwalify():
            return RadiomicsFeatureExtractor(copy.deepcopy(dict(self.params)))

    def provenance(self) -> dict[str, Any]:
        """What produced a feature table: versions, this file's sha256 and name, and the settings.

        Returns:
            A JSON-serialisable dict: pyradiomics, numpy, SimpleITK, pywavelets, python versions;
            params_path, params_sha256; settings (effective, defaults included); image_types;
            feature_classes.
        """
        import numpy
        import pywt
        import radiomics
        import SimpleITK

        return {
            "pyradiomics_version": str(radiomics.__version__),
            "numpy_version": numpy.__version__,
            "simpleitk_version": SimpleITK.Version.VersionString(),
            "pywavelets_version": pywt.__version__,
            "python_version": platform.python_version(),
            "params_path": str(self.path),
            "params_sha256": self.sha256,
            "settings": _jsonable(self.settings),
            "image_types": _jsonable(self.image_types),
            "feature_classes": _jsonable(self.feature_classes),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def extractor_from(params: Mapping[str, Any]):
    """A `RadiomicsFeatureExtractor` from a parameter dict, validated first like a file.

    Raises:
        ParameterFileError: PyRadiomics' schema rejects the dict.
    """
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    validated = validate_params(params)
    with _quiet_pykwalify():
        return RadiomicsFeatureExtractor(validated)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_params(path: str | Path | None = None) -> RadiomicsParams:
    """Read and validate a PyRadiomics parameter file (default: the shipped `radiomics.yaml`).

    Raises:
        ParameterFileError: the file is missing or unreadable, or PyRadiomics' schema rejects it;
            the message names the file.
    """
    resolved = Path(path).expanduser().resolve() if path is not None else default_params_path()
    try:
        digest = file_sha256(resolved)
    except OSError as exc:
        raise ParameterFileError(f"{resolved}: cannot read PyRadiomics parameter file: {exc}") from exc
    params = validate_params(path=resolved)
    return RadiomicsParams(path=resolved, sha256=digest, params=params)
