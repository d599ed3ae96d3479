"""Guard v2 against the classical filter on the small held-out case of the prior's unit test.

The case of ``tests/test_prior_offline.py`` (6bdf chain A, 64^3 at 1.5 A/voxel, B = 15 A^2
truth; half-maps blurred by B and noised so that their FSC is 0.5 at the given resolution;
:func:`heldout_truth` and :func:`heldout_half_maps` make it for both, and for the tiled-inference
test of ``tests/test_prior_infer_adaptive.py``)
for several seeds, scored as ``benchmarks/prior_eval.py`` scores (FSC 0.5 against the truth,
correlation inside the molecule): classical (FSC filter + mask), prior, prior + guard v1,
prior + guard v2, the plain half-map. Prints one line per seed; writes nothing.

Usage: python benchmarks/guard_small_box.py [--resolution 6 --b-factor 80] [--seeds 0 1 2 3]
    [--weights default]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import torch

from cryoprior.fourier.filters import apply_filter, bfactor_filter
from cryoprior.io.atomic_model import read_atomic_model
from cryoprior.prior.data import fsc_shaped_noise, model_envelope, target_map
from cryoprior.prior.infer import enhance_map, load_prior
from cryoprior.regularizers.guard import GuardSettings, apply_guard
from cryoprior.validate.fsc import fourier_shell_correlation

ROOT = Path(__file__).resolve().parents[1]


def _prior_eval():
    spec = importlib.util.spec_from_file_location("prior_eval", ROOT / "benchmarks/prior_eval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def heldout_truth(*, b_factor_angstrom2: float = 80.0) -> dict:
    """The small held-out case's truth: 6bdf chain A, 64^3 at 1.5 A/voxel, B = 15 A^2.

    Returns ``voxel`` (A), ``truth`` (64, 64, 64), ``blurred`` (the truth blurred by
    ``b_factor_angstrom2``: the half-maps' signal), ``envelope`` (the molecule's mask for
    scoring) and ``diameter`` (A, the model's extent plus 10 A).
    """
    n, voxel = 64, 1.5
    model = read_atomic_model(ROOT / "src/cryoprior/data/6bdf_chainA.pdb.gz", remove_ligands=True)
    model = model.centred()
    pos = model.positions_angstrom
    truth = target_map(
        model,
        box_size=n,
        voxel_size_angstrom=voxel,
        b_factor_angstrom2=15,
        origin_angstrom=(-n * voxel / 2,) * 3,
    )
    blur = bfactor_filter(n, b_factor_angstrom2=b_factor_angstrom2, voxel_size_angstrom=voxel)
    return {
        "voxel": voxel,
        "truth": truth,
        "blurred": apply_filter(truth, blur),
        "envelope": model_envelope(truth, voxel_size_angstrom=voxel),
        "diameter": 2 * float(np.sqrt((pos**2).sum(1)).max()) + 10.0,
    }


def heldout_half_maps(
    case: dict, *, seed: int, resolution_angstrom: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """Two (64, 64, 64) half-maps of :func:`heldout_truth`'s case: its blurred truth plus noise
    shaped so that their FSC is 0.5 at ``resolution_angstrom`` and 10 % white noise, half 1's
    drawn first from ``numpy.random.default_rng(seed)``."""
    blurred = case["blurred"]
    rng = np.random.default_rng(seed)
    noises = [
        fsc_shaped_noise(
            blurred,
            voxel_size_angstrom=case["voxel"],
            resolution_angstrom=resolution_angstrom,
            rng=rng,
        )
        + 0.1 * blurred.std() * rng.standard_normal(blurred.shape)
        for _ in range(2)
    ]
    return blurred + noises[0], blurred + noises[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=float, default=6.0, help="half-map FSC 0.5 (A)")
    parser.add_argument("--b-factor", type=float, default=80.0, help="blur of the half-maps")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default="default", help="prior weights (name or file)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench = _prior_eval()
    case = heldout_truth(b_factor_angstrom2=args.b_factor)
    voxel, truth, envelope = case["voxel"], case["truth"], case["envelope"]
    prior = load_prior(args.weights)
    for seed in args.seeds:
        half, other = heldout_half_maps(case, seed=seed, resolution_angstrom=args.resolution)
        fsc = fourier_shell_correlation(half, other)
        enhanced = enhance_map(
            half,
            voxel_size_angstrom=voxel,
            prior=prior,
            particle_diameter_angstrom=case["diameter"],
        ).map
        maps = {
            "classical": bench.classical(half, fsc, voxel),
            "prior": enhanced,
            "guard v1": apply_guard(
                enhanced, half, fsc=fsc, settings=GuardSettings(method="trailing")
            )[0],
            "guard v2": apply_guard(
                enhanced, half, fsc=fsc, settings=GuardSettings(method="bounded")
            )[0],
            "plain": half,
        }
        scores = {k: bench.scores(v, truth, envelope, voxel) for k, v in maps.items()}
        ref = scores["classical"]["res_fsc0.5_angstrom"]
        gain = 100 * (ref - scores["guard v2"]["res_fsc0.5_angstrom"]) / ref
        text = "  ".join(
            f"{k} {s['res_fsc0.5_angstrom']:.2f} A cc {s['cc_in_molecule']:.3f}"
            for k, s in scores.items()
        )
        print(f"seed {seed}: {text}; guard v2 vs classical at FSC 0.5: {gain:+.1f} %", flush=True)


if __name__ == "__main__":
    main()
