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
        ("brats2023", [0, 1, 2, 3], [0, 1, 2, 3]),
        ("brats2013", [0, 1, 2, 3, 4], [0, 1, 2, 1, 3]),
        ("map:0=0,1=2,7=3", [0, 1, 7], [0, 2, 3]),
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


@pytest.mark.parametrize(
    "label, expected",
    [("MES", "Mesenchymal"), (" classical ", "Classical"), ("PN", "Proneural"), ("neural", "Neural"), ("NEU", "Neural"),
     (None, None), (float("nan"), None), ("", None), ("N/A", None), ("[Not Available]", None)],
)  # fmt: skip
def test_normalise_subtype(label, expected):
    assert contract.normalise_subtype(label) == expected


def test_normalise_subtype_refuses_unknown_labels():
    with pytest.raises(ValueError, match="unknown subtype 'Astro'; expected one of Classical, Mesenchymal"):
        contract.normalise_subtype("Astro")
    assert set(contract.SUBTYPE_ALIASES.values()) == set(contract.SUBTYPES)
    import pandas as pd

    assert contract.normalise_subtype(pd.NA) is None


def test_label_map_names_round_trip_and_accept_label_names():
    name = contract.label_map_scheme({1: "edema", "4": 3, 2: "necrotic_core"})
    assert name == "map:0=0,1=2,2=1,4=3"
    scheme = contract.label_scheme(name)
    assert dict(scheme.mapping) == {0: 0, 1: 2, 2: 1, 4: 3} and "whole_tumor" in scheme.regions
    assert to_canonical(np.array([0, 4, 2, 1]), name).tolist() == [0, 3, 1, 2]


@pytest.mark.parametrize("mapping, match", [({1: 9}, "9 is not a canonical label"), ({"x": 1}, "'x' is not an integer"),
                                            ({1: "tumour"}, "'tumour' is not a canonical label")])  # fmt: skip
def test_label_map_refuses_targets_outside_the_canonical_labels(mapping, match):
    with pytest.raises(ValueError, match=match):
        contract.label_map_scheme(mapping)


def test_file_values_a_label_map_does_not_cover_name_the_file():
    with pytest.raises(LabelError, match=r"seg.nii.gz: unexpected label values \[5\] for label scheme 'map:0=0,1=2'"):
        to_canonical(np.array([0, 1, 5]), "map:0=0,1=2", "seg.nii.gz")
    with pytest.raises(KeyError, match="malformed label map"):
        contract.label_scheme("map:1-2")
