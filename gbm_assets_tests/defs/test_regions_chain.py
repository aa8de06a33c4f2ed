"""Region segmentation end to end: canonical labels through preprocessing, training slices, a region
model's lesion mask on the native grid and tumour burden per region (MSD BRATS_001's real labels),
and a region U-Net for the four-channel `all` input trained and scored through Dagster."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from gbm_assets.defs.masks.assets import champion_dice
from gbm_assets.defs.segment import checks as segment_checks
from gbm_assets.lib.contract import label_counts
from gbm_assets.lib.masks import worker
from gbm_assets.lib.masks.postprocess import postprocess_mask
from gbm_assets.lib.preprocess.slices import SliceConfig, write_slice_arrays
from gbm_assets.lib.preprocess.volumes import (
    PreprocessConfig,
    preprocess_patient,
    read_case,
    save_preprocessed,
)
from gbm_assets.lib.radiomics.burden_rows import patient_burden
from gbm_assets.lib.segment.dataset import SliceRows
from gbm_assets.lib.segment.regions import labels_to_regions
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tracking import TrackingStore
from gbm_assets.lib.store.warehouse import query
from gbm_assets_tests.conftest import add_cohort, materialize, metadata, shared_case

MSD_CHANNELS = {"flair": "0000", "t1": "0001", "t1c": "0002", "t2": "0003"}


class Oracle(torch.nn.Module):
    """A stand-in region U-Net whose logits are given region masks (+-20), served slice by slice in the
    order `predict_slices` asks for them: the chain around the model is then tested exactly."""

    out_channels = 3

    def __init__(self, regions: np.ndarray):  # (Z, 3, X, Y) bool
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.logits, self.cursor = torch.from_numpy(np.where(regions, 20.0, -20.0).astype(np.float32)), 0

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits[self.cursor:self.cursor + len(x)]
        self.cursor += len(x)
        return out


@pytest.mark.realdata
def test_msd_labels_through_preprocessing_slices_and_a_region_mask_back_to_the_native_grid(tmp_path):
    msd = shared_case("msd-task01-brats001")
    labels_path = msd / "BRATS_001_labels.nii.gz"
    images, labels = read_case({s: msd / f"BRATS_001_{c}.nii.gz" for s, c in MSD_CHANNELS.items()}, labels_path, "msd")
    native_counts = label_counts(np.asarray(labels.dataobj))
    tumour = {k: native_counts[k] for k in (1, 2, 3)}
    assert all(tumour.values())
    patient = preprocess_patient(images, labels, PreprocessConfig(size=192))
    assert {k: label_counts(patient.labels)[k] for k in tumour} == tumour  # 1 mm in, 1 mm out, cropped to the brain: every tumour voxel kept
    folder = save_preprocessed(patient, tmp_path / "pre" / "BRATS_001")

    index, skipped = write_slice_arrays(tmp_path / "slices", [("msd", "BRATS_001", folder, "train")], SliceConfig(inputs=("all",)))
    assert not skipped and (index["lesion_area_mm2"] > 0).sum() == int((patient.labels > 0).any(axis=(0, 1)).sum())
    x = np.load(tmp_path / "slices" / "all_x.npy", mmap_mode="r")
    rows = SliceRows([(tmp_path / "slices" / "y.npy", index["row"].to_numpy())], "labels")
    assert x.shape[1:] == (4, 192, 192)  # T1, T1c, T2, FLAIR
    np.testing.assert_array_equal(rows[:], np.moveaxis(patient.labels[..., index["slice"].to_numpy()], -1, 0))
    assert {k: label_counts(rows[:])[k] for k in tumour} == tumour  # every lesion slice, canonical labels preserved

    # a region model that predicts the truth: its mask, written on the native grid, holds every label voxel
    oracle = Oracle(np.moveaxis(labels_to_regions(patient.labels, axis=0), -1, 0))
    worker._MODELS["oracle.pt"] = oracle
    try:
        task = worker.MaskTask("BRATS_001", str(folder), str(tmp_path / "masks" / "mask.nii.gz"), "oracle.pt", "all",
                               threshold=0.5, min_component_mm3=0.0, keep_largest=False)  # fmt: skip
        row = worker.segment_patient(task)
    finally:
        del worker._MODELS["oracle.pt"]
    mask = nib.load(row["mask_path"])
    assert row["roi_scheme"] == "canonical" and mask.shape == labels.shape and np.allclose(mask.affine, labels.affine)
    written, truth = np.asarray(mask.dataobj), np.asarray(labels.dataobj)
    # the whole tumour is cleaned as a binary model's mask is (holes filled, slice by slice and in 3D): the
    # expert label's few holes become edema; every labelled voxel keeps its label
    filled = postprocess_mask((truth > 0).astype(np.float32), (1.0, 1.0, 1.0), 0.5, 0.0)
    expected = np.where(filled & (truth == 0), 2, truth)
    assert np.array_equal(written, expected) and 0 < (filled & (truth == 0)).sum() < 100
    assert {k: label_counts(written)[k] for k in (1, 3)} == {k: tumour[k] for k in (1, 3)}
    assert row["voxels"] == int(filled.sum())

    # tumour burden of the predicted canonical mask: a row for every region, equal to the truth's
    raw = SimpleNamespace(patient_id="BRATS_001", labels_path=str(labels_path), label_scheme="msd",
                          **{f"{s}_path": str(msd / f"BRATS_001_{c}.nii.gz") for s, c in MSD_CHANNELS.items()})  # fmt: skip
    burden, notes = patient_burden("msd", raw, SimpleNamespace(mask_path=row["mask_path"], roi_scheme=row["roi_scheme"]))
    predicted = pd.DataFrame([r for r in burden if r["roi_source"] == "predicted"]).set_index("region")
    assert not notes and {"whole_tumor", "tumor_core", "enhancing", "edema", "necrosis"} <= set(predicted.index)
    assert (predicted.loc[["tumor_core", "enhancing", "necrosis"], "dice"] == 1).all()
    assert (predicted.loc[["whole_tumor", "edema"], "dice"] > 0.999).all() and np.allclose(predicted["volume_diff_ml"], 0, atol=0.1)


def test_the_dice_floor_check_reads_the_whole_tumour_row_of_a_region_model():
    table = pd.DataFrame({"sequence": "all", "split": "test", "region": ["whole_tumor", "tumor_core", "enhancing"],
                          "metric": "dice_3d", "value": [0.9, 0.1, 0.1]})  # fmt: skip
    assert segment_checks.segmentation_metrics_test_dice_above_floor(table).passed
    table.loc[0, "value"] = 0.2
    assert not segment_checks.segmentation_metrics_test_dice_above_floor(table).passed


@pytest.mark.slow
def test_a_region_model_for_all_trains_scores_per_region_and_writes_canonical_masks(data_root, instance, monkeypatch):
    import mlflow

    from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = DataRoot(data_root)
    write_cohort(root.cohorts_dir, "tiny", 6, seed=3, options=SynthOptions(shape=(48, 48, 24), spacing=(3.0, 3.0, 6.0)))
    add_cohort(instance, "tiny")
    materialize(data_root, ["raw_cohort", "clinical_records", "preprocessed_volumes", "training_slices"], "tiny", instance=instance,
                run_config={"preprocessed_volumes": {"config": {"target_spacing_mm": 3.0, "size": 48}}})  # fmt: skip
    materialize(data_root, ["training_splits"], instance=instance)
    config = {"base": 4, "epochs": 2, "batch_size": 8, "target": "regions", "randomise": True, "randomise_keeps_scaling": True,
              "threads": 1, "dropout": 0.0}
    trained = materialize(data_root, ["unet_model", "unet_champion", "segmentation_metrics"], "all", instance=instance,
                          run_config={"unet_model": {"config": config}})  # fmt: skip
    meta = metadata(trained, "unet_model")
    assert meta["target"] == "regions" and meta["randomise"] is True and meta["dropout"] == 0.0
    assert meta["patients_without_region_labels"] == []  # phantom truth carries every region
    # asked to, randomisation gives each channel back the scaling preprocessing gave it (FLAIR and T2 percentile-scaled by default)
    params = mlflow.MlflowClient(meta["tracking_uri"]).get_run(meta["mlflow_run_id"]).data.params
    assert params["channel_scalings"] == str(("zscore", "zscore", "percentile", "percentile")) and meta["randomise_keeps_scaling"]
    index = pd.read_parquet(root.table_file("training_slices", "tiny"))
    assert set(index["label_regions"]) == {"whole_tumor,tumor_core,enhancing,edema,necrosis"}
    blob = torch.load(Path(meta["checkpoint"]), map_location="cpu", weights_only=True)
    assert blob["architecture"]["out_channels"] == 3 and blob["architecture"]["target"] == "regions" and blob["input"] == "all"
    metrics = query(root, "select * from segmentation_metrics")
    assert set(metrics["sequence"]) == {"all"}
    assert metrics.groupby("region").size().to_dict() == {"whole_tumor": 36, "tumor_core": 36, "enhancing": 36}  # 12 metrics x 3 splits
    # lesion_masks' auto choice ranks this champion on the validation volumes' whole-tumour Dice just logged
    validation = metrics.query("split == 'validation' and region == 'whole_tumor' and metric == 'dice_3d'")["value"]
    assert champion_dice(TrackingStore.for_data_root(data_root).tracking_uri)["all"] == pytest.approx(float(validation.iloc[0]))
    masks = materialize(data_root, ["lesion_masks"], "tiny", instance=instance,
                        run_config={"lesion_masks": {"config": {"model_input": "all"}}})  # fmt: skip
    table = pd.read_parquet(root.table_file("lesion_masks", "tiny"))
    assert metadata(masks, "lesion_masks")["segmented"] == 6 and set(table["roi_scheme"]) == {"canonical"}
    for path in table["mask_path"]:
        values = set(np.unique(np.asarray(nib.load(str(root.root / path) if not Path(path).is_absolute() else path).dataobj)))
        assert values <= {0, 1, 2, 3}
