"""The automatic choice of the champion U-Net for a cohort."""

import pytest

from gbm_assets.lib.masks.choice import (
    NoMatchingChampion,
    choose_model_input,
    common_sequences,
)


def test_best_dice_among_champions_whose_inputs_the_cohort_has():
    champions = {"stack": 0.9, "flair": 0.6, "t1c": 0.7, "t1": 0.95}
    assert choose_model_input("c", ("t1c", "flair"), champions) == "t1c"
    assert choose_model_input("c", ("t1", "t1c", "t2", "flair"), champions) == "t1"
    assert choose_model_input("c", ("flair",), {"flair": None, "stack": 0.9}) == "flair"


def test_the_four_channel_input_needs_every_sequence():
    champions = {"all": 0.9, "flair": 0.6}
    assert choose_model_input("c", ("t1", "t1c", "t2", "flair"), champions) == "all"
    assert choose_model_input("c", ("t1", "t2", "flair"), champions) == "flair"  # no T1c: `all` is not eligible
    with pytest.raises(NoMatchingChampion, match=r"all \(t1\+t1c\+t2\+flair\)"):
        choose_model_input("c", ("t1", "t2", "flair"), {"all": 0.9})


def test_no_matching_champion_names_cohort_and_sequences():
    with pytest.raises(NoMatchingChampion, match=r"cohort 'old': .*\[t1c, flair\], which match no champion.*stack \(t1\+t2\+flair\)"):
        choose_model_input("old", ("flair", "t1c"), {"stack": 0.9})


def test_common_sequences_is_what_every_patient_has():
    assert common_sequences([{"t1c", "flair", "t2"}, {"flair", "t1c"}]) == ("t1c", "flair")
    assert common_sequences([]) == ()
