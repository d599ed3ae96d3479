"""cryoprior's reconstruction equals relion_external_reconstruct's output.

Reference: RELION 3.1.3 (Debian, double precision). The job files come from real
``relion_refine_mpi`` runs made in this session (conftest: 3 ranks, box 32, 400 particles
from ``relion_project``) whose hook was the stock ``relion_external_reconstruct``, so the
``*_external_reconstruct.mrc`` beside each job STAR is the binary's own output. Variants
the run did not exercise (``--no_map``, ``--skip_gridding``, a current size below the box)
are produced by running the binary on the same files during the test.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cryoprior.extrec.run import plain_reconstruction
from cryoprior.io.mrc import read_map
from cryoprior.io.relion_extrec import (
    ExternalReconstructJob,
    read_external_reconstruct_job,
)
from cryoprior.reconstruct import ReconstructionOptions

pytestmark = pytest.mark.relion

TOLERANCE = 1e-5  # of the map's maximum absolute value


def _rel_max_diff(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours.astype(np.float32) - reference).max() / np.abs(reference).max())


def _reconstruct(
    job: ExternalReconstructJob,
    *,
    options: ReconstructionOptions | None = None,
    base_dir: Path,
) -> np.ndarray:
    """Our map of one job, exactly as the hook makes it (extrec.run.plain_reconstruction)."""
    options = options if options is not None else ReconstructionOptions()
    return plain_reconstruction(job, options=options, base_dir=base_dir)


def _jobs(workdir: Path, name: str) -> list[Path]:
    return sorted((workdir / "Refine3D" / name).glob("*_external_reconstruct.star"))


def _stock(workdir: Path, star: Path, out: Path, flags: list[str]) -> np.ndarray:
    subprocess.run(
        ["relion_external_reconstruct", str(star.relative_to(workdir)), "--o", str(out), *flags],
        cwd=workdir, check=True, capture_output=True,
    )  # fmt: skip
    return read_map(out)


def test_every_call_of_a_padding_2_run_matches(stock_run):
    workdir, _result = stock_run
    stars = _jobs(workdir, "stock")
    halves = [s for s in stars if "_half" in s.name]
    finals = [s for s in stars if "_half" not in s.name]
    assert len(halves) >= 10 and len(finals) == 1, [s.name for s in stars]
    sizes = set()
    for star in stars:
        job = read_external_reconstruct_job(star)
        sizes.add(job.current_image_size)
        reference = read_map(workdir / job.result_path)
        ours = _reconstruct(job, base_dir=workdir)
        assert ours.shape == reference.shape == (32, 32, 32)
        assert _rel_max_diff(ours, reference) <= TOLERANCE, star.name
    # the run exercised a current size below the box and the full box
    assert min(sizes) < 32 and max(sizes) == 32


@pytest.mark.parametrize(
    "flags",
    [["--no_map"], ["--skip_gridding"], ["--no_map", "--skip_gridding"]],
    ids=["no_map", "skip_gridding", "both"],
)
def test_variants_match(stock_run, tmp_path, flags):
    workdir, _ = stock_run
    stars = _jobs(workdir, "stock")
    chosen = [stars[0], stars[len(stars) // 2], stars[-1]]  # early (cur < N), middle, final joined
    options = ReconstructionOptions(
        do_map="--no_map" not in flags, skip_gridding="--skip_gridding" in flags
    )
    for star in chosen:
        reference = _stock(workdir, star, tmp_path / "stock.mrc", flags)
        ours = _reconstruct(read_external_reconstruct_job(star), options=options, base_dir=workdir)
        assert _rel_max_diff(ours, reference) <= TOLERANCE, (star.name, flags)


@pytest.mark.parametrize("current_size", [12, 20, 21, 22])
def test_current_size_below_box(stock_run, tmp_path, current_size):
    """The same arrays with _rlnCurrentImageSize edited (as RELION writes in early iterations)."""
    workdir, _ = stock_run
    star = [s for s in _jobs(workdir, "stock") if "_half1" in s.name][-1]
    text = re.sub(r"(_rlnCurrentImageSize\s+)\d+", rf"\g<1>{current_size}", star.read_text())
    edited = star.with_name(f"edited_cur{current_size}_external_reconstruct.star")
    edited.write_text(text)
    try:
        for flags in ([], ["--skip_gridding"]):
            reference = _stock(workdir, edited, tmp_path / "stock.mrc", flags)
            job = read_external_reconstruct_job(edited)
            assert job.current_image_size == current_size
            options = ReconstructionOptions(skip_gridding=bool(flags))
            ours = _reconstruct(job, options=options, base_dir=workdir)
            assert _rel_max_diff(ours, reference) <= TOLERANCE, (current_size, flags)
    finally:
        edited.unlink()


def test_padding_1_and_1_5(stock_run_padding):
    pad, workdir, result = stock_run_padding
    name = result.output_root.parent.name
    stars = _jobs(workdir, name)
    assert any("_half" not in s.name for s in stars), "no final joined call"
    for star in stars:
        job = read_external_reconstruct_job(star)
        assert job.padding_factor == pad
        reference = read_map(workdir / job.result_path)
        ours = _reconstruct(job, base_dir=workdir)
        assert _rel_max_diff(ours, reference) <= TOLERANCE, star.name


def test_parity_check_can_fail(stock_run):
    """A deliberately wrong variant (no gridding correction of the MAP term) is detected."""
    workdir, _ = stock_run
    star = _jobs(workdir, "stock")[-2]
    job = read_external_reconstruct_job(star)
    reference = read_map(workdir / job.result_path)
    wrong = _reconstruct(job, options=ReconstructionOptions(skip_gridding=True), base_dir=workdir)
    assert _rel_max_diff(wrong, reference) > TOLERANCE
