"""MRC and STAR I/O: round trips, atomic writes, clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

import cryoprior.io.mrc as io_mrc
from cryoprior.errors import InputFileError
from cryoprior.io import read_map, read_star, write_map_atomic, write_star_atomic
from cryoprior.io.mrc import read_map_header
from cryoprior.io.star import require_block, star_version


def _names_file(excinfo: pytest.ExceptionInfo, path: Path) -> str:
    message = str(excinfo.value)
    assert path.name in message, message
    return message


# ---------------------------------------------------------------------------------------
# MRC
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 5, 4), (7, 3)])
def test_map_round_trip(tmp_path, shape):
    volume = np.random.default_rng(0).normal(size=shape)  # float64 in, float32 on disk
    before = volume.copy()
    path = tmp_path / "map.mrc"
    assert write_map_atomic(path, volume, voxel_size_angstrom=1.25) == path
    np.testing.assert_array_equal(volume, before)  # input not modified
    back = read_map(path)
    assert back.dtype == np.float32 and back.shape == shape
    np.testing.assert_array_equal(back, volume.astype(np.float32))
    assert read_map(path, dtype=None).dtype == np.float32
    assert read_map_header(path).voxel_size_angstrom == pytest.approx(1.25)
    assert read_map_header(path).shape[3 - len(shape) :] == shape
    with mrcfile.open(path) as mrc:  # a valid MRC file for mrcfile itself
        assert mrc.header.mode == 2
        assert float(mrc.header.dmax) == pytest.approx(float(volume.astype(np.float32).max()))


def test_map_read_returns_a_copy(tmp_path):
    path = write_map_atomic(tmp_path / "map.mrc", np.zeros((3, 3, 3)))
    array = read_map(path)
    array[...] = 7.0  # writable, not a view of a read-only memory map
    assert read_map(path).max() == 0.0


def test_map_write_leaves_no_temp_file_and_replaces(tmp_path):
    path = tmp_path / "map.mrc"
    write_map_atomic(path, np.ones((4, 4, 4)))
    write_map_atomic(path, np.full((2, 2, 2), 3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["map.mrc"]
    assert read_map(path).shape == (2, 2, 2)


def test_map_write_with_fixed_label_is_reproducible(tmp_path):
    volume = np.random.default_rng(4).normal(size=(6, 6, 6)).astype(np.float32)
    a = write_map_atomic(tmp_path / "a.mrc", volume, voxel_size_angstrom=2.0, label="fixed")
    b = write_map_atomic(tmp_path / "b.mrc", volume, voxel_size_angstrom=2.0, label="fixed")
    assert a.read_bytes() == b.read_bytes()
    with mrcfile.open(a) as mrc:
        assert int(mrc.header.nlabl) == 1 and mrc.header.label[0].decode() == "fixed"
        np.testing.assert_array_equal(mrc.data, volume)
    write_map_atomic(tmp_path / "c.mrc", volume)  # mrcfile's own label: time-stamped
    with mrcfile.open(tmp_path / "c.mrc") as mrc:
        assert mrc.header.label[0].decode().strip() != "fixed"


def test_map_write_failure_keeps_destination(tmp_path, monkeypatch):
    path = tmp_path / "map.mrc"
    write_map_atomic(path, np.ones((4, 4, 4)))
    original = path.read_bytes()

    def failing_new(name, *args, **kwargs):
        Path(name).write_bytes(b"partial")  # some bytes reach the temporary file
        raise OSError("disk full")

    monkeypatch.setattr(io_mrc.mrcfile, "new", failing_new)
    with pytest.raises(OSError, match="disk full"):
        write_map_atomic(path, np.zeros((4, 4, 4)))
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["map.mrc"]


def test_map_write_bad_input_keeps_destination(tmp_path):
    path = tmp_path / "map.mrc"
    write_map_atomic(path, np.ones((4, 4, 4)))
    original = path.read_bytes()
    with pytest.raises(ValueError):
        write_map_atomic(path, np.array([["a", "b"], ["c", "d"]]))
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["map.mrc"]


def test_damaged_header_is_read_and_logged_not_silenced(tmp_path, caplog):
    # mrcfile's permissive mode turns a damaged header into a warning; the reader must go on
    # and log it naming the file (it used to silence it), and never raise it as an error.
    path = tmp_path / "damaged.mrc"
    write_map_atomic(path, np.ones((4, 4, 4)), voxel_size_angstrom=2.0)
    with open(path, "r+b") as handle:
        handle.seek(208)  # the header's map ID, b"MAP "
        handle.write(b"XXXX")
    with caplog.at_level("WARNING", logger="cryoprior.io"):
        back = read_map(path)
        voxel = read_map_header(path).voxel_size_angstrom
    np.testing.assert_array_equal(back, np.ones((4, 4, 4), np.float32))
    assert voxel == pytest.approx(2.0)
    lines = [r.getMessage() for r in caplog.records if r.name == "cryoprior.io"]
    assert len(lines) == 2, lines  # one per read, each once
    assert all(str(path) in line and "Map ID" in line for line in lines), lines


def test_intact_map_logs_nothing(tmp_path, caplog):
    path = tmp_path / "intact.mrc"
    write_map_atomic(path, np.ones((4, 4, 4)), voxel_size_angstrom=2.0)
    with caplog.at_level("WARNING", logger="cryoprior.io"):
        read_map(path)
    assert not caplog.records


def test_read_map_header_shape_errors_name_the_file(tmp_path):
    with pytest.raises(InputFileError, match=r"missing\.mrc: file does not exist"):
        read_map_header(tmp_path / "missing.mrc")
    with pytest.raises(InputFileError, match="is a folder"):
        read_map_header(tmp_path)
    garbage = tmp_path / "garbage.mrc"
    garbage.write_bytes(b"not an MRC file" * 10)
    with pytest.raises(InputFileError, match=r"garbage\.mrc: not a readable MRC file"):
        read_map_header(garbage)


def test_read_map_missing(tmp_path):
    path = tmp_path / "absent.mrc"
    with pytest.raises(InputFileError) as excinfo:
        read_map(path)
    assert "does not exist" in _names_file(excinfo, path)


def test_read_map_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.mrc"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(InputFileError) as excinfo:
        read_map(path)
    _names_file(excinfo, path)


def test_read_map_truncated(tmp_path):
    path = write_map_atomic(tmp_path / "truncated.mrc", np.ones((8, 8, 8)))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputFileError) as excinfo:
        read_map(path)
    _names_file(excinfo, path)


# ---------------------------------------------------------------------------------------
# STAR
# ---------------------------------------------------------------------------------------


def _blocks() -> dict:
    return {
        "general": {"rlnPixelSize": 1.5, "rlnSymmetryGroup": "C2", "rlnOriginalImageSize": 64},
        "table": pd.DataFrame(
            {"rlnSpectralIndex": np.arange(4), "rlnReferenceTau2": [1.0, 0.5, 0.25, 1e-5]}
        ),
    }


def test_star_round_trip(tmp_path):
    path = tmp_path / "blocks.star"
    assert write_star_atomic(path, _blocks()) == path
    back = read_star(path)
    assert list(back) == ["general", "table"]
    assert back["general"] == _blocks()["general"]
    pd.testing.assert_frame_equal(back["table"], _blocks()["table"], check_dtype=False)
    assert star_version(path) is None  # starfile writes no RELION version comment
    assert [p.name for p in tmp_path.iterdir()] == ["blocks.star"]


def test_star_with_relion_version_line_is_reproducible(tmp_path):
    # RELION 3.1.3's files start "\n# version 30001\n\n" (as tests/data/relion_job_tiny's STAR
    # files, written by relion_refine_mpi); starfile's own comment carries a time stamp
    first = write_star_atomic(tmp_path / "a.star", _blocks(), relion_version=30001)
    second = write_star_atomic(tmp_path / "b.star", _blocks(), relion_version=30001)
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text()
    assert text.startswith("\n# version 30001\n\ndata_general") and "Created by" not in text
    assert star_version(first) == 30001
    back = read_star(first)
    assert back["general"] == _blocks()["general"]
    pd.testing.assert_frame_equal(back["table"], _blocks()["table"], check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.star", "b.star"]


def test_star_no_overwrite(tmp_path):
    path = write_star_atomic(tmp_path / "blocks.star", _blocks())
    before = path.read_text()
    with pytest.raises(FileExistsError):
        write_star_atomic(path, {"other": {"rlnPixelSize": 2.0}}, overwrite=False)
    assert path.read_text() == before


def test_star_version_comment(tmp_path):
    path = tmp_path / "v.star"
    path.write_text("\n# version 50001\n\ndata_general\n\n_rlnPixelSize 1.0\n")
    assert star_version(path) == 50001
    assert read_star(path) == {"general": {"rlnPixelSize": 1.0}}


def test_read_star_missing(tmp_path):
    path = tmp_path / "absent.star"
    with pytest.raises(InputFileError) as excinfo:
        read_star(path)
    assert "does not exist" in _names_file(excinfo, path)


def test_read_star_no_blocks(tmp_path):
    path = tmp_path / "text.star"
    path.write_text("this is not\na STAR file\n")
    with pytest.raises(InputFileError) as excinfo:
        read_star(path)
    assert "no data block" in _names_file(excinfo, path)


def test_require_block(tmp_path):
    path = write_star_atomic(tmp_path / "blocks.star", _blocks())
    blocks = read_star(path)
    assert require_block(blocks, "general", path)["rlnPixelSize"] == 1.5
    with pytest.raises(InputFileError) as excinfo:
        require_block(blocks, "optics", path)
    message = _names_file(excinfo, path)
    assert "data_optics" in message and "data_general" in message
