import numpy as np
import pytest

from gbm_assets.lib import contract
from gbm_assets.lib.contract import LabelError, canonical_sequence, label_counts, region_mask, to_canonical


@pytest.mark.parametrize(
    "scheme, source, expected",
    [
        ("brats", [0, 1, 2, 4], [0, 1, 2, 3]),
        ("msd", [0, 1, 2, 3], [0, 2, 1, 3]),
        ("hd_glio", [0, 1, 2], [0, 2, 3]),
        ("binary", [0, 1], [0, 2]),
        ("binary", [0, 255], [0, 2]),
        ("canonical", [0, 1, 2, 3], [0, 1, 2, 3]),
    ],
)
def test_converters_map_each_source_label(scheme, source, expected):
    mask = np.array(source, dtype=np.uint8).reshape(1, 1, -1)
    out = to_canonical(mask, scheme)
    assert out.dtype == np.uint8 and out.shape == mask.shape
    assert out.ravel().tolist() == expected


def test_float_masks_with_integer_values_convert():
    assert to_canonical(np.array([0.0, 4.0, 2.0]), "brats").tolist() == [0, 3, 2]


@pytest.mark.parametrize("scheme, bad", [("brats", 3), ("msd", 4), ("hd_glio", 3), ("binary", 2)])
def test_unexpected_label_names_file_and_values(scheme, bad):
    mask = np.array([0, 1, bad, bad], dtype=np.uint8)
    with pytest.raises(LabelError) as err:
        to_canonical(mask, scheme, source="/x/P001_seg.nii.gz")
    message = str(err.value)
    assert "/x/P001_seg.nii.gz" in message and f"[{bad}]" in message and scheme in message


def test_non_integer_label_is_rejected():
    with pytest.raises(LabelError, match="0.5"):
        to_canonical(np.array([0.0, 0.5]), "canonical", source="m.nii")


def test_unknown_scheme_lists_known_ones():
    with pytest.raises(KeyError, match="brats"):
        to_canonical(np.zeros(3), "nope")


def test_regions_follow_the_contract():
    labels = np.array([0, 1, 2, 3])
    assert region_mask(labels, "whole_tumor").tolist() == [False, True, True, True]
    assert region_mask(labels, "tumor_core").tolist() == [False, True, False, True]
    assert region_mask(labels, "enhancing").tolist() == [False, False, False, True]
    assert label_counts(np.array([0, 3, 3, 2])) == {0: 1, 1: 0, 2: 1, 3: 2}


@pytest.mark.parametrize("alias, name", [("T1ce", "t1c"), ("T1gd", "t1c"), ("FLAIR", "flair"), ("T2w", "t2"), ("t1", "t1")])
def test_sequence_aliases(alias, name):
    assert canonical_sequence(alias) == name


def test_unknown_sequence_raises():
    with pytest.raises(KeyError, match="dwi"):
        canonical_sequence("dwi")


def test_only_whole_tumour_is_claimed_for_binary_masks():
    assert contract.label_scheme("binary").regions == ("whole_tumor",)
