"""The benchmark's controls as pure functions: the cut-off rule's one-shell tolerance from its
closed form, and both rules at and around their limits."""

import pytest

from cryoprior.validate.controls import (
    cutoff_control,
    one_shell_finer_angstrom,
    pure_noise_control,
)


def test_one_shell_finer_is_the_next_fourier_shell():
    # box 64 at 2.5 A: edge 160 A; 20 A is shell 8, one shell finer is shell 9 = 160/9 A
    assert one_shell_finer_angstrom(20.0, box_size=64, voxel_size_angstrom=2.5) == pytest.approx(
        160.0 / 9.0
    )


@pytest.mark.parametrize(
    ("relion", "gold", "truth", "passed"),
    [
        (20.0, 21.0, 25.0, True),  # all coarser than the cut-off
        (160.0 / 9.0, 20.0, 20.0, True),  # exactly one shell finer: tolerated
        (17.5, 20.0, 20.0, False),  # RELION past the tolerance
        (20.0, 20.0, 17.0, False),  # the truth FSC past it
        (None, None, 17.0, False),  # a value not measured is not judged; the others are
        (None, None, None, True),
    ],
)
def test_cutoff_control_fails_any_value_beyond_one_shell(relion, gold, truth, passed):
    control = cutoff_control(
        cutoff_angstrom=20.0,
        box_size=64,
        voxel_size_angstrom=2.5,
        relion_final_angstrom=relion,
        gold_standard_fsc_0143_angstrom=gold,
        truth_fsc_0143_angstrom=truth,
    )
    assert control.passed is passed
    assert control.to_dict()["values"]["truth_fsc_0143_angstrom"] == truth
    assert "one Fourier shell" in control.rule


def test_cutoff_control_without_a_box_has_no_tolerance():
    control = cutoff_control(
        cutoff_angstrom=20.0,
        box_size=None,
        voxel_size_angstrom=None,
        relion_final_angstrom=19.9,
        gold_standard_fsc_0143_angstrom=None,
        truth_fsc_0143_angstrom=None,
    )
    assert control.one_shell_finer_angstrom == 20.0
    assert not control.passed


@pytest.mark.parametrize(
    ("final", "passed"), [(30.2, True), (30.0, True), (29.9, False), (None, True)]
)
def test_pure_noise_control_fails_anything_finer_than_the_reference(final, passed):
    # without the box the tolerance is zero: the reference's low-pass itself
    control = pure_noise_control(ini_high_angstrom=30.0, relion_final_angstrom=final)
    assert control.passed is passed


@pytest.mark.parametrize(
    ("final", "gold", "passed"),
    [
        (200 / 7, 30.1, True),  # 30 A lies between shells 6 (33.3 A) and 7 (28.6 A) of 200 A
        (200 / 8, 30.1, False),  # two shells finer than 30 A: structure from noise
        (200 / 7, 25.0, False),  # the half-maps agree beyond the accepted shell
        (None, None, True),
    ],
)
def test_pure_noise_control_allows_one_shell_of_the_box(final, gold, passed):
    # box 80 at 2.5 A: one shell finer than 30 A is 200 / (200 / 30 + 1) = 26.09 A
    control = pure_noise_control(
        ini_high_angstrom=30.0,
        relion_final_angstrom=final,
        gold_standard_fsc_0143_angstrom=gold,
        box_size=80,
        voxel_size_angstrom=2.5,
    )
    assert control.one_shell_finer_angstrom == pytest.approx(200 / (200 / 30 + 1))
    assert control.passed is passed
