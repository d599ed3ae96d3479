"""Tests of the one pose type (cryoprior.poses) and its readers (a table, a STAR file).

References: STAR files are written with starfile from known poses and read back; pixel origins
are converted by the pixel size (origin_angstrom = origin_pixels * pixel) by definition of
RELION 3.1's ``rlnOriginXAngst``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile

from cryoprior.errors import InputFileError
from cryoprior.io.relion import poses_from_star
from cryoprior.poses import Poses, concatenate_poses, poses_from_particles
from cryoprior.simulate.poses import uniform_poses, with_random_shifts
from cryoprior.validate.poses import match_poses


def test_poses_validation():
    with pytest.raises(ValueError, match="expected 2"):
        Poses([0.0, 1.0], [0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="non-finite"):
        Poses([np.nan], [0.0], [0.0])
    with pytest.raises(ValueError, match="image_names has 1 values, expected 2"):
        Poses([0.0, 1.0], [0.0, 0.0], [0.0, 0.0], image_names=["1@a.mrcs"])
    p = Poses([10.0], [20.0], [30.0])
    np.testing.assert_allclose(p.take([0, 0]).tilt_degrees, [20.0, 20.0])


def test_image_names_follow_take_concatenate_and_shifts():
    named = Poses([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], image_names=["a", "b", "c"])
    assert named.take([2, 0]).image_names.tolist() == ["c", "a"]
    assert named.take(np.array([False, True, False])).rot_degrees.tolist() == [2.0]
    assert concatenate_poses([named, named]).image_names.tolist() == ["a", "b", "c"] * 2
    # a set without names makes the whole set nameless, as it cannot be matched anyway
    assert concatenate_poses([named, uniform_poses(2, seed=0)]).image_names is None
    shifted = with_random_shifts(named, sd_angstrom=1.0, seed=0)
    assert shifted.image_names.tolist() == ["a", "b", "c"]
    assert named.to_dataframe().columns[0] == "rlnImageName"
    assert "rlnImageName" not in uniform_poses(2, seed=0).to_dataframe()
    with pytest.raises(ValueError, match="image names"):
        match_poses(uniform_poses(2, seed=0), named)


def test_poses_from_particles_columns():
    frame = pd.DataFrame(
        {
            "rlnImageName": ["1@a.mrcs", "2@a.mrcs"],
            "rlnAngleRot": [10.0, 20.0],
            "rlnAngleTilt": [30.0, 40.0],
            "rlnAnglePsi": [50.0, 60.0],
            "rlnOriginX": [1.0, -1.0],
            "rlnOriginY": [0.5, 0.0],
        }
    )
    poses = poses_from_particles(frame, pixel_size_angstrom=2.0)
    assert poses.origin_x_angstrom.tolist() == [2.0, -2.0]
    assert poses.origin_y_angstrom.tolist() == [1.0, 0.0]
    assert poses.image_names.tolist() == ["1@a.mrcs", "2@a.mrcs"]
    with pytest.raises(ValueError, match="pixels"):
        poses_from_particles(frame)  # pixel shifts without a pixel size
    with pytest.raises(InputFileError, match=r"x\.star: .*pixels"):
        poses_from_particles(frame, source="x.star")
    frame["rlnOriginXAngst"] = [3.0, 4.0]
    frame["rlnOriginYAngst"] = [5.0, 6.0]
    poses = poses_from_particles(frame)
    assert poses.origin_x_angstrom.tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="rlnAnglePsi"):
        poses_from_particles(frame.drop(columns="rlnAnglePsi"))
    with pytest.raises(ValueError, match="not numeric"):
        poses_from_particles(frame.assign(rlnAngleTilt=["x", "y"]))


def test_poses_from_star_round_trip(tmp_path):
    poses = with_random_shifts(uniform_poses(7, seed=5), sd_angstrom=2.0, seed=6)
    table = poses.to_dataframe()
    table["rlnImageName"] = [f"{i:06d}@x.mrcs" for i in range(1, 8)]
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [1.0], "rlnImageSize": 8})
    starfile.write({"optics": optics, "particles": table}, tmp_path / "p.star")
    back = poses_from_star(tmp_path / "p.star")
    np.testing.assert_allclose(back.matrices(), poses.matrices(), atol=1e-5)
    np.testing.assert_allclose(back.origin_x_angstrom, poses.origin_x_angstrom, atol=1e-5)
    assert back.image_names.tolist() == table["rlnImageName"].tolist()
    # a bare loop without origins
    starfile.write(table[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]], tmp_path / "a.star")
    np.testing.assert_array_equal(poses_from_star(tmp_path / "a.star").origin_y_angstrom, 0.0)
    starfile.write(table[["rlnAngleRot", "rlnAngleTilt"]], tmp_path / "bad.star")
    with pytest.raises(InputFileError, match="rlnAnglePsi"):
        poses_from_star(tmp_path / "bad.star")
    old = table[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].assign(rlnOriginX=1.0)
    starfile.write(old, tmp_path / "old.star")
    with pytest.raises(InputFileError, match="pixels"):
        poses_from_star(tmp_path / "old.star")


def test_poses_from_star_converts_pixel_origins_by_optics_group(tmp_path):
    """Pixel origins (as relion_project writes) times each particle's optics pixel size."""
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1, 2], "rlnImagePixelSize": [1.5, 3.0], "rlnImageSize": [8, 8]}
    )
    particles = pd.DataFrame(
        {
            "rlnImageName": ["1@a.mrcs", "1@b.mrcs"],
            "rlnOpticsGroup": [1, 2],
            "rlnAngleRot": [0.0, 0.0],
            "rlnAngleTilt": [0.0, 0.0],
            "rlnAnglePsi": [0.0, 0.0],
            "rlnOriginX": [2.0, 2.0],
            "rlnOriginY": [-1.0, 1.0],
        }
    )
    starfile.write({"optics": optics, "particles": particles}, tmp_path / "p.star")
    poses = poses_from_star(tmp_path / "p.star")
    assert poses.origin_x_angstrom.tolist() == [3.0, 6.0]
    assert poses.origin_y_angstrom.tolist() == [-1.5, 3.0]
