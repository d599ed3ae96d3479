"""The experiment runner end to end with real RELION 3.1.3: the miniature benchmark (suite
``mini``: chain A of 6bdf, box 32, 300 particles, the realistic suite's four modes) through ``cryoprior benchmark``,
the report rebuilt from the cache, and ``cryoprior refine`` interrupted and continued.

Every refinement here is a real ``mpirun -np 3 relion_refine_mpi`` calling
``cryoprior-extrec``; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cryoprior.cli.app import app
from cryoprior.refine.cases import MODES
from cryoprior.refine.config import REALISTIC_MODES, suite
from cryoprior.refine.run import run_key

pytestmark = [pytest.mark.relion]


def _records(run_dir: Path) -> list[dict]:
    log = run_dir / "Refine3D" / "cryoprior_extrec.log"
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _relion_running_under(folder: Path) -> bool:
    """Whether a relion_refine_mpi process has its working directory inside ``folder``."""
    for proc in Path("/proc").iterdir():
        try:
            if b"relion_refine_mpi" not in (proc / "cmdline").read_bytes():
                continue
            if str(folder) in os.readlink(proc / "cwd"):
                return True
        except OSError:
            continue
    return False


@pytest.fixture(scope="module")
def mini_benchmark(tmp_path_factory):
    """``cryoprior benchmark --suite mini``, interrupted (SIGINT, as Ctrl-C) once the first
    refinement has written iteration 3, then run again to the end: the interrupted run is
    resumed with RELION's --continue, the other modes run afresh."""
    root = tmp_path_factory.mktemp("mini_benchmark")
    (case,) = suite("mini")
    first = root / "runs" / run_key(case, case.modes[0]) / "Refine3D"
    cmd = [sys.executable, "-m", "cryoprior.cli.app", "benchmark", "--suite", "mini"]
    start = time.monotonic()
    # SIGINT reset to its default in the child: a test run started in the background by a
    # non-interactive shell (`./run.sh test &`) ignores SIGINT, and children inherit that
    proc = subprocess.Popen(
        [*cmd, "--root", str(root)],
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 600
    while not (first / "run_it003_optimiser.star").exists():
        assert proc.poll() is None, "the benchmark ended before iteration 3"
        assert time.monotonic() < deadline, "no iteration 3 within 10 minutes"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) != 0
    time.sleep(1.0)
    interrupted = {
        "relion_running": _relion_running_under(root),
        "files": sorted(p.name for p in first.iterdir()),
        "it001_mtime": (first / "run_it001_half1_class001.mrc").stat().st_mtime_ns,
    }
    result = CliRunner().invoke(app, ["benchmark", "--suite", "mini", "--root", str(root)])
    assert result.exit_code == 0, result.output
    return root, result.output, time.monotonic() - start, interrupted


def test_every_mode_refines_and_is_validated(mini_benchmark):
    root, _output, *_ = mini_benchmark
    (case,) = suite("mini")
    assert case.modes == REALISTIC_MODES
    for mode in case.modes:
        run_dir = root / "runs" / run_key(case, mode)
        data = json.loads((run_dir / "result.json").read_text())
        refine = data["refine"]
        assert refine["finished"] and refine["returncode"] == 0, (mode, refine)
        assert refine["final_resolution_angstrom"] is not None
        # the half-maps decide the resolution; the truth is the independent check: every mode
        # must give a map that resembles the particle at this size (relion alone gives ~0.77)
        summary = data["summary"]
        assert summary["truth_correlation"] > 0.5, (mode, summary)
        assert 2 * 2.8 <= summary["fsc_0143_angstrom"] < 30, (mode, summary)
        assert summary["q_score_mean"] is not None and summary["fsc_q_mean_angstrom"] is not None
        assert summary["angular_error_mean_degrees"] is not None
        records = _records(run_dir)
        assert not any(r["fallback"] for r in records), [r["fallback"] for r in records]
        halves = [r for r in records if r["half"] is not None]
        applied = [r for r in halves if r["applied"]]
        # regularizers run only once RELION is in local searches, and they did run
        assert applied, f"{mode}: never applied"
        assert all(r["local_searches"] for r in applied)
        assert refine["regularized_calls"] == sum(bool(r["applied"]) for r in records)
        assert refine["reached_local_searches"]
        if mode == "prior":  # guard v2, and the halves met: each saw the other's plain map
            assert all(r["guard"]["method"] == "bounded" for r in applied), mode
            assert all(r["guard"]["support_end_shell"] >= 1 for r in applied), mode
            assert all("pair_wait" in r["seconds"] for r in applied), mode
    prior = json.loads(
        (root / "runs" / run_key(case, "prior") / "result.json").read_text()
    )  # the hook of the default mode went through the guard
    hooks = json.loads((root / "runs" / run_key(case, "prior") / "run.json").read_text())["hook"]
    assert "--regularizer prior --guard" in hooks and prior["mode"] == "prior"
    assert not any(r.get("guard") for r in _records(
        root / "runs" / run_key(case, "prior-noguard")))  # fmt: skip


def test_report_written_and_rebuilt_from_cache(mini_benchmark, tmp_path):
    root, _output, *_ = mini_benchmark
    report = root / "report"
    md = (report / "report.md").read_text()
    for mode in REALISTIC_MODES:  # every mode's row: RELION, ..., prior, no guard
        assert f"| {MODES[mode].label} |" in md
    html = (report / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html
    for suffix in ("fsc", "maps", "local_resolution", "views"):
        png = report / "figures" / f"mini_{suffix}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((report / "results.json").read_text())
    assert set(results["cases"][0]["runs"]) == set(REALISTIC_MODES)
    # rebuild elsewhere from the cached runs only
    result = CliRunner().invoke(app, ["report", str(root), "--out", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    again = (tmp_path / "again" / "report.md").read_text()
    # once in the comparison table, once in the table over repeats (one repeat here)
    assert again.count("| RELION |") == 2
    assert "RELION, then prior + guard once" in again and "no repeats, no call" in again


def test_post_processing_arm_and_pose_differences(mini_benchmark):
    """The derived results of the runs: the prior applied once to plain RELION's final
    half-maps (guarded and not), validated against the truth, and every mode's poses against
    plain RELION's."""
    root, output, *_ = mini_benchmark
    (case,) = suite("mini")
    relion_dir = root / "runs" / run_key(case, "relion")
    for variant, guarded in (
        ("prior", True),
        ("prior-v1", True),
        ("prior-bounded", True),
        ("prior-noguard", False),
    ):
        data = json.loads((relion_dir / "postprocess" / variant / "result.json").read_text())
        assert data["guarded"] is guarded and data["source_run"] == relion_dir.name
        assert data["summary"]["truth_correlation"] is not None
        assert data["summary"]["truth_fsc_05_angstrom"] is not None
        assert (relion_dir / "postprocess" / variant / "half1.mrc").is_file()
    assert "post-processing arm" in output
    for mode in ("sidesplitter", "prior", "prior-noguard"):
        path = root / "runs" / run_key(case, mode) / "pose_difference.json"
        diff = json.loads(path.read_text())["summary"]
        assert diff["n_particles"] == 300
        assert 0 <= diff["angular_error_degrees"]["mean"] < 180


def test_report_as_a_browser_shows_it(mini_benchmark, tmp_path):
    """The HTML report opened in Debian's headless Chromium (skipped without it): the text a
    reader sees has no Markdown left over (``**bold**`` was once shown literally), every figure
    the page shows exists, and the page renders to a non-blank screenshot."""
    from browser import png_pixels, render

    root, *_ = mini_benchmark
    page = root / "report" / "report.html"
    dom = render(page, tmp_path / "report.png")
    visible = re.sub(r"<(script|style)\b.*?</\1>|<[^>]+>", " ", dom, flags=re.S)
    assert "**" not in visible and "](" not in visible
    assert "RELION" in visible and "prior + guard" in visible
    images = re.findall(r'<img[^>]*\bsrc="([^"]+)"', dom)
    assert len(images) >= 4, images
    for src in images:
        assert (page.parent / src).is_file(), src
    pixels = png_pixels(tmp_path / "report.png")
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    ink = (pixels[..., :3] < 128).any(axis=-1).mean()
    assert 0.005 < ink < 0.6, ink  # text and figures drawn, not a blank or black page


def test_rerun_uses_the_cache(mini_benchmark):
    root, _, first_seconds, _ = mini_benchmark
    (case,) = suite("mini")
    run_out = root / "runs" / run_key(case, "relion") / "Refine3D" / "run.out"
    before = run_out.stat().st_mtime_ns
    start = time.monotonic()
    result = CliRunner().invoke(app, ["benchmark", "--suite", "mini", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert result.output.count("cached") == len(case.modes)
    assert run_out.stat().st_mtime_ns == before
    assert time.monotonic() - start < first_seconds / 4


def test_interrupted_run_was_resumed(mini_benchmark):
    """After the SIGINT no RELION process was left and no final map existed; the second
    invocation continued from the last optimiser STAR (root run_ctN, N >= 3) and did not
    redo the first iterations."""
    root, _, _, interrupted = mini_benchmark
    (case,) = suite("mini")
    run_dir = root / "runs" / run_key(case, case.modes[0])
    job = run_dir / "Refine3D"
    assert not interrupted["relion_running"]
    assert "run_class001.mrc" not in interrupted["files"]
    refine = json.loads((run_dir / "result.json").read_text())["refine"]
    match = re.fullmatch(r"Refine3D/run_ct(\d+)", refine["output_root"])
    assert match, refine["output_root"]
    ct = int(match.group(1))
    assert ct >= 3
    assert (job / f"run_ct{ct}_class001.mrc").is_file()
    assert (job / "run_it001_half1_class001.mrc").stat().st_mtime_ns == interrupted["it001_mtime"]
    # RELION restarts at the iteration it continues from; nothing before it is redone
    redone = [p.name for p in job.glob(f"run_ct{ct}_it*_half1_model.star")]
    assert redone and min(int(re.search(r"_it(\d+)_", n).group(1)) for n in redone) >= ct
    stars = [r["star"] for r in _records(run_dir)]
    assert any(f"run_ct{ct}_it" in star for star in stars)
    assert refine["wall_seconds"] > 0


def test_refine_command_errors(tmp_path):
    """Clear errors before RELION starts: a missing particles file, an unknown mode."""
    runner = CliRunner()
    missing = runner.invoke(app, ["refine", str(tmp_path / "nope.star"), "--ref", "x.mrc"])
    assert missing.exit_code == 1 and "nope.star" in missing.output
    star = tmp_path / "p.star"
    star.write_text("data_\nloop_\n_rlnImageName\n1@a.mrcs\n")
    bad = runner.invoke(app, ["refine", str(star), "--ref", "x.mrc", "--mode", "magic"])
    assert bad.exit_code == 2 and "unknown mode" in bad.output
