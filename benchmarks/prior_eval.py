"""Evaluation of the learned prior against the ground truth on held-out proteins.

Held-out proteins: beta-galactosidase (5a1a, 1.2 A/voxel, box 180) and the 20S proteasome
(6bdf, 1.0 A/voxel, box 200, with an extra blur along z as from preferred orientations). Neither
they nor any relative is in the training set (``cryoprior.prior.data`` refuses them).

Per protein and level (half-map FSC = 0.5 at d, B-factor blur): the truth is the model map
(gemmi, B = 15 A^2); two half-maps are the truth blurred by B plus independent FSC-shaped noise
(``cryoprior.prior.data.fsc_shaped_noise``, half-half FSC 0.5 at d) and 10 % white noise. Maps
scored against the truth (FSC at 0.5 / 0.143, and the real-space correlation inside the molecule,
envelope > 0.5):

- input: half-map 1 as it is;
- classical: what RELION's own regularization can do for a half-map - the FSC-weighted (Wiener,
  weight = half-map FSC per shell) filter and a solvent mask estimated from that filtered map
  (15 A low-pass, threshold 10 % of its 99.9th percentile, 3 A dilation, 6 A cosine edge);
- prior: ``enhance_map`` with the shipped weights (no guard);
- prior+guard: the prior's map through ``regularizers.guard.apply_guard`` with the half-map FSC,
  as ``cryoprior-extrec`` applies it: guard v1 (``method="trailing"``, the plain map beyond the
  FSC = 1/7 shell) and guard v2 (``method="bounded"``, docs/guard.md: the prior's map beyond
  that shell with its amplitude per shell capped at sqrt(FSC) x the plain map's, shells with
  insignificant FSC zeroed), each with two stand-ins for RELION's plain map: the raw half-map
  and the FSC-weighted half-map.

Pure-noise control: the same noise without the protein goes through the prior; reported is the
RMS of its output in the particle sphere relative to the RMS of its output on the real input
of that level (same noise); for guard v2 the noise's output goes through the guard with the
FSC of the two noise halves (plain map: the noise half) and is compared with the guarded
output of the real input.

Cut-off control (level d6 only): the blurred truth hard low-passed at 8 A plus the same two
noises (so beyond 8 A the half-maps hold noise only); the half-map through the prior and the
guards (with that pair's FSC) must not correlate with the truth beyond 8 A more than the plain
half-map does: reported are the FSC 0.143 against the truth, the correlation with the truth
over all shells beyond the cut-off and the largest truth FSC of the 12 shells after it. Beyond the half-maps' FSC = 1/7 shell: the correlation with the
truth of the prior's output there, of the input, and of what the prior added (prior - input),
plus the prior's share of power beyond that shell.

Inference time: random maps at the model's voxel size, 64^3, 128^3, 256^3, default settings.

Realistic mode (``--relion-runs ROOT``, ROOT a ``cryoprior benchmark --root`` folder, e.g. of
the realistic suite): instead of synthetic half-maps, the final unfiltered half-maps of every
finished plain-RELION run (mode ``relion``) of a case with signal under ROOT - CTF-affected
images, RELION's own reconstruction - scored the same way against that dataset's
``true_map.mrc`` (for a belted membrane protein: protein + belt, what the particles hold; also
against the protein alone) with the envelope made from it: input (half-map 1), classical, the
prior as the hook runs it (``PriorRegularizer``, the case's voxel size, the shipped weights or
``--weights``), prior + guard v1 / v2 with half-map 1 as the plain map and the two half-maps'
unmasked FSC as the guard's FSC (RELION's gold-standard FSC as the hook receives it).

Usage: python benchmarks/prior_eval.py [--weights default] [--threads 2] [--quick]
       [--levels d6 d8] [--cases 5a1a] [--guard-variants]
       python benchmarks/prior_eval.py --relion-runs ROOT [--weights default] [--threads 2]
Writes benchmarks/results/prior_eval.{json,md} (realistic mode: prior_eval_realistic.{json,md}).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from scipy import ndimage

from cryoprior.conventions import shell_index
from cryoprior.io.atomic_model import AtomicModel, read_atomic_model
from cryoprior.prior.data import fsc_shaped_noise, model_envelope, target_map
from cryoprior.prior.infer import InferenceSettings, enhance_map, load_prior
from cryoprior.regularizers.guard import (
    GuardSettings,
    apply_guard,
    fsc_cutoff_shell,
    shell_amplitude_limit,
    significant_fsc,
    trailing_weights,
)
from cryoprior.validate.fsc import fourier_shell_correlation, resolution_at_threshold

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ROOT / "src" / "cryoprior" / "data"  # shipped with the package (PROVENANCE.md)
CASES = [
    {"name": "5a1a", "file": "5a1a.cif.gz", "voxel": 1.2, "box": 180, "aniso_b": 0.0},
    {"name": "6bdf", "file": "6bdf.pdb.gz", "voxel": 1.0, "box": 200, "aniso_b": 200.0},
]
GUARD_V1 = GuardSettings(method="trailing")
GUARD_V2 = GuardSettings(method="bounded")
CONTROL_LEVEL = "d6"
CONTROL_CUTOFF_ANGSTROM = 8.0
LEVELS = [
    {"name": "d4.5", "resolution": 4.5, "b": 50.0},
    {"name": "d6", "resolution": 6.0, "b": 80.0},
    {"name": "d8", "resolution": 8.0, "b": 120.0},
    {"name": "d11", "resolution": 11.0, "b": 160.0},
]


def find_model(file: str) -> Path:
    path = MODELS / file
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    return path


def load_model(path: Path) -> AtomicModel:
    """Centred heavy atoms (no waters or ligands), as the prior's training reads a model; the
    benchmark proteins are read here, never trained on."""
    return read_atomic_model(path, remove_ligands=True).centred()


def rfft_freq(n: int, voxel: float) -> np.ndarray:
    f = np.fft.fftfreq(n, d=voxel)
    fx = np.fft.rfftfreq(n, d=voxel)
    return np.stack(np.meshgrid(f, f, fx, indexing="ij"), axis=-1)


def shells(n: int) -> np.ndarray:
    k = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n
    return np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)


def fsc_weighted(half: np.ndarray, fsc: np.ndarray) -> np.ndarray:
    """The half-map times its FSC per shell: the Wiener filter of one half-map."""
    n = half.shape[0]
    r = np.minimum(np.rint(shells(n)).astype(int), n // 2)
    weight = np.clip(fsc, 0.0, 1.0)[r]
    weight[0, 0, 0] = 1.0
    return scipy.fft.irfftn(scipy.fft.rfftn(half) * weight, s=half.shape)


def classical(half: np.ndarray, fsc: np.ndarray, voxel: float) -> np.ndarray:
    n = half.shape[0]
    filtered = fsc_weighted(half, fsc)
    s2 = (rfft_freq(n, voxel) ** 2).sum(-1)
    lp = scipy.fft.irfftn(scipy.fft.rfftn(filtered) * (s2 < (1 / 15.0) ** 2), s=half.shape)
    binary = lp > 0.1 * np.percentile(lp, 99.9)
    binary = ndimage.binary_opening(binary, iterations=1)
    dist = ndimage.distance_transform_edt(~binary) * voxel
    mask = np.where(dist <= 3.0, 1.0, 0.5 + 0.5 * np.cos(np.pi * np.clip((dist - 3.0) / 6.0, 0, 1)))
    mask[dist >= 9.0] = 0.0
    return filtered * mask


def scores(volume, truth, envelope, voxel) -> dict:
    n = truth.shape[0]
    fsc = fourier_shell_correlation(volume, truth)
    inside = envelope > 0.5
    return {
        "res_fsc0.5_angstrom": resolution_at_threshold(
            fsc, threshold=0.5, box_size=n, voxel_size_angstrom=voxel
        ),
        "res_fsc0.143_angstrom": resolution_at_threshold(
            fsc, threshold=0.143, box_size=n, voxel_size_angstrom=voxel
        ),
        "cc_in_molecule": float(np.corrcoef(volume[inside], truth[inside])[0, 1]),
    }


def beyond_cutoff(prior_map, half, truth, cutoff_shell) -> dict:
    n = truth.shape[0]
    sel = shells(n) > cutoff_shell
    fp, fh, ft = (scipy.fft.rfftn(v)[sel] for v in (prior_map, half, truth))
    full = np.abs(scipy.fft.rfftn(prior_map)) ** 2
    full[0, 0, 0] = 0

    def cc(a, b):
        den = np.sqrt((np.abs(a) ** 2).sum() * (np.abs(b) ** 2).sum())
        return float((a * b.conj()).real.sum() / den) if den > 0 else 0.0

    return {
        "cutoff_shell": float(cutoff_shell),
        "prior_cc_with_truth": cc(fp, ft),
        "input_cc_with_truth": cc(fh, ft),
        "added_cc_with_truth": cc(fp - fh, ft),
        "prior_power_fraction": float(full[sel].sum() / full.sum()),
    }


#: Guard designs measured for docs/guard.md (``--guard-variants``): name -> what is kept beyond
#: the FSC = 1/7 edge. "cap" variants keep the prior's map with its RMS per shell capped at
#: sqrt(q) x the plain map's, q a function of the (significant) half-map FSC F.
GUARD_VARIANTS = {
    "v1 trailing (plain map)": "trailing",
    "v2 cap sqrt(F), no significance test": "cap-sqrtF-0",
    "v2 cap sqrt(F), 2 SD": "cap-sqrtF-2",
    "v2 cap sqrt(F), 3 SD (shipped)": "cap-sqrtF-3",
    "cap F (Wiener amplitude), 3 SD": "cap-F-3",
    "cap sqrt(2F/(1+F)) (full-map Cref), 3 SD": "cap-cref-3",
    "plain phases, |out| = min(|prior|, |plain|) per voxel": "shrink",
    "plain map x clip(Re(prior plain*) / |plain|^2, 0, 1) per voxel": "project",
}


def guard_variant(regularized, plain, fsc, variant: str) -> np.ndarray:
    """One of GUARD_VARIANTS (benchmark only; the shipped ones are ``apply_guard``'s)."""
    if variant == "trailing":
        return apply_guard(regularized, plain, fsc=fsc, settings=GUARD_V1)[0]
    if variant.startswith("cap-sqrtF-"):
        sigmas = float(variant.rsplit("-", 1)[1])
        settings = GuardSettings(method="bounded", significance_sigmas=sigmas)
        return apply_guard(regularized, plain, fsc=fsc, settings=settings)[0]
    n = plain.shape[0]
    report = apply_guard(regularized, plain, fsc=fsc, settings=GUARD_V1)[1]
    reg_ft = scipy.fft.rfftn(report.scale * np.asarray(regularized) + report.offset)
    pln_ft = scipy.fft.rfftn(plain)
    cutoff = fsc_cutoff_shell(fsc)
    below = np.flatnonzero(fsc < 1.0 / 7.0)
    if below.size:
        cutoff = min(cutoff, max(float(below[0]) - 0.5, 0.0))
    w = trailing_weights(n, cutoff_shell=cutoff, edge_width_shells=GUARD_V1.edge_width_shells)
    if variant.startswith("cap-"):
        f = significant_fsc(fsc, n=n, sigmas=3.0)
        q = f**2 if variant == "cap-F-3" else 2 * f / (1 + f)
        factor = shell_amplitude_limit(reg_ft, pln_ft, q, n=n)
        beyond = reg_ft * factor[np.minimum(shell_index(n), n // 2 + 1)]
    elif variant == "shrink":
        beyond = np.minimum(np.abs(reg_ft), np.abs(pln_ft)) * np.exp(1j * np.angle(pln_ft))
    elif variant == "project":
        gain = (reg_ft * pln_ft.conj()).real / np.maximum(np.abs(pln_ft) ** 2, 1e-300)
        beyond = np.clip(gain, 0.0, 1.0) * pln_ft
    else:
        raise ValueError(variant)
    return scipy.fft.irfftn(w * reg_ft + (1 - w) * beyond, s=plain.shape)


def cutoff_control_scores(volume, truth, voxel, cutoff_angstrom) -> dict:
    """How much a map correlates with the truth beyond a cut-off its data do not pass."""
    n = truth.shape[0]
    fsc = fourier_shell_correlation(volume, truth)
    cut_shell = n * voxel / cutoff_angstrom
    first = int(np.floor(cut_shell + 0.5)) + 1  # first rounded shell wholly beyond the cut-off
    sel = shells(n) > cut_shell + 0.5
    fv, ft = scipy.fft.rfftn(volume)[sel], scipy.fft.rfftn(truth)[sel]
    den = np.sqrt((np.abs(fv) ** 2).sum() * (np.abs(ft) ** 2).sum())
    return {
        "res_fsc0.143_angstrom": resolution_at_threshold(
            fsc, threshold=0.143, box_size=n, voxel_size_angstrom=voxel
        ),
        "cc_beyond_cutoff": float((fv * ft.conj()).real.sum() / den) if den > 0 else 0.0,
        "max_fsc_beyond_cutoff": float(fsc[first : first + 12].max()),
    }


def cutoff_control(blurred, noises, truth, voxel, run_prior, variants=False) -> dict:
    """The offline cut-off control (module docstring) for one protein."""
    n = truth.shape[0]
    s2 = (rfft_freq(n, voxel) ** 2).sum(-1)
    low = scipy.fft.irfftn(
        scipy.fft.rfftn(blurred) * (s2 < (1 / CONTROL_CUTOFF_ANGSTROM) ** 2), s=truth.shape
    )
    h1, h2 = low + noises[0], low + noises[1]
    fsc = fourier_shell_correlation(h1, h2)
    enhanced = run_prior(h1)
    wiener = fsc_weighted(h1, fsc)
    maps = {
        "input": h1,
        "classical": classical(h1, fsc, voxel),
        "prior": enhanced,
        "prior+guard": apply_guard(enhanced, h1, fsc=fsc, settings=GUARD_V1)[0],
        "prior+guard(wiener)": apply_guard(enhanced, wiener, fsc=fsc, settings=GUARD_V1)[0],
        "prior+guard_v2": apply_guard(enhanced, h1, fsc=fsc, settings=GUARD_V2)[0],
        "prior+guard_v2(wiener)": apply_guard(enhanced, wiener, fsc=fsc, settings=GUARD_V2)[0],
    }
    result = {
        "cutoff_angstrom": CONTROL_CUTOFF_ANGSTROM,
        "one_shell_finer_angstrom": n * voxel / (n * voxel / CONTROL_CUTOFF_ANGSTROM + 1),
        "guard_cutoff_shell": fsc_cutoff_shell(fsc),
        "methods": {
            k: cutoff_control_scores(v, truth, voxel, CONTROL_CUTOFF_ANGSTROM)
            for k, v in maps.items()
        },
    }
    if variants:
        result["variants"] = {
            name: {
                stand_in: cutoff_control_scores(
                    guard_variant(enhanced, plain, fsc, key), truth, voxel, CONTROL_CUTOFF_ANGSTROM
                )
                for stand_in, plain in (("raw", h1), ("wiener", wiener))
            }
            for name, key in GUARD_VARIANTS.items()
        }
    return result


def region_rms(volume, radius_voxels) -> float:
    n = volume.shape[0]
    c = np.arange(n) - n // 2
    inside = (
        c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2
    ) <= radius_voxels**2
    return float(volume[inside].std())


def run_case(case, prior, settings, levels, variants=False) -> list[dict]:
    path = find_model(case["file"])
    model = load_model(path)
    pos = model.positions_angstrom
    n, voxel = case["box"], case["voxel"]
    length = n * voxel
    diameter = 2 * float(np.sqrt((pos**2).sum(1)).max()) + 10.0
    truth = target_map(
        model,
        box_size=n,
        voxel_size_angstrom=voxel,
        b_factor_angstrom2=15.0,
        origin_angstrom=(-length / 2,) * 3,
    )
    envelope = model_envelope(truth, voxel_size_angstrom=voxel)
    freq = rfft_freq(n, voxel)
    s2 = (freq**2).sum(-1)
    rows = []
    for level in levels:
        # one generator per protein and level: any subset (--cases, --levels) draws the same
        rng = np.random.default_rng([2024, CASES.index(case), LEVELS.index(level)])
        filt = np.exp(-level["b"] * s2 / 4.0)
        if case["aniso_b"]:
            filt = filt * np.exp(-case["aniso_b"] * freq[..., 0] ** 2 / 4.0)
        blurred = scipy.fft.irfftn(scipy.fft.rfftn(truth) * filt, s=truth.shape)
        white = 0.1 * blurred.std()
        noises = [
            fsc_shaped_noise(
                blurred, voxel_size_angstrom=voxel, resolution_angstrom=level["resolution"], rng=rng
            )
            + white * rng.standard_normal(truth.shape)
            for _ in range(2)
        ]
        h1, h2 = blurred + noises[0], blurred + noises[1]
        half_fsc = fourier_shell_correlation(h1, h2)
        # the current resolution a refinement would have: the half-map FSC = 1/7 point
        current = resolution_at_threshold(
            half_fsc, threshold=1.0 / 7.0, box_size=n, voxel_size_angstrom=voxel
        )
        t0 = time.perf_counter()
        out = enhance_map(
            h1,
            voxel_size_angstrom=voxel,
            prior=prior,
            particle_diameter_angstrom=diameter,
            resolution_angstrom=current,
            settings=settings,
        )
        seconds = time.perf_counter() - t0
        wiener = fsc_weighted(h1, half_fsc)
        guarded, report = apply_guard(out.map, h1, fsc=half_fsc, settings=GUARD_V1)
        guarded_wiener, _ = apply_guard(out.map, wiener, fsc=half_fsc, settings=GUARD_V1)
        t1 = time.perf_counter()
        v2, report_v2 = apply_guard(out.map, h1, fsc=half_fsc, settings=GUARD_V2)
        v2_seconds = time.perf_counter() - t1
        v2_wiener, report_v2_wiener = apply_guard(out.map, wiener, fsc=half_fsc, settings=GUARD_V2)

        def run_prior(volume, current=current):
            return enhance_map(
                volume,
                voxel_size_angstrom=voxel,
                prior=prior,
                particle_diameter_angstrom=diameter,
                resolution_angstrom=current,
                settings=settings,
            ).map

        noise_map = run_prior(noises[0])
        noise_fsc = fourier_shell_correlation(noises[0], noises[1])
        noise_v2, _ = apply_guard(noise_map, noises[0], fsc=noise_fsc, settings=GUARD_V2)
        radius = 0.5 * diameter / voxel
        cutoff = fsc_cutoff_shell(half_fsc)
        row = {
            "protein": case["name"],
            "level": level["name"],
            "half_map_fsc0.5_angstrom": resolution_at_threshold(
                half_fsc, threshold=0.5, box_size=n, voxel_size_angstrom=voxel
            ),
            "b_factor_angstrom2": level["b"],
            "anisotropic_b_angstrom2": case["aniso_b"],
            "methods": {
                "input": scores(h1, truth, envelope, voxel),
                "classical": scores(classical(h1, half_fsc, voxel), truth, envelope, voxel),
                "prior": scores(out.map, truth, envelope, voxel),
                "prior+guard": scores(guarded, truth, envelope, voxel),
                "prior+guard(wiener)": scores(guarded_wiener, truth, envelope, voxel),
                "prior+guard_v2": scores(v2, truth, envelope, voxel),
                "prior+guard_v2(wiener)": scores(v2_wiener, truth, envelope, voxel),
            },
            "guard_power_removed_fraction": report.power_removed_fraction,
            "guard_v2_power_removed_fraction": report_v2.power_removed_fraction,
            "guard_v2_wiener_power_removed_fraction": report_v2_wiener.power_removed_fraction,
            "guard_v2_seconds": v2_seconds,
            "beyond_fsc_1_7": beyond_cutoff(out.map, h1, truth, cutoff),
            "pure_noise_rms_ratio": region_rms(noise_map, radius) / region_rms(out.map, radius),
            "pure_noise_rms_ratio_guard_v2": region_rms(noise_v2, radius) / region_rms(v2, radius),
            "prior_seconds": seconds,
            "model_box": out.info["model_box"],
            "current_resolution_angstrom": current,
        }
        if variants:
            row["guard_variants"] = {
                name: {
                    stand_in: scores(
                        guard_variant(out.map, plain, half_fsc, key), truth, envelope, voxel
                    )
                    for stand_in, plain in (("raw", h1), ("wiener", wiener))
                }
                for name, key in GUARD_VARIANTS.items()
            }
        if level["name"] == CONTROL_LEVEL:
            row["cutoff_control"] = cutoff_control(
                blurred, noises, truth, voxel, run_prior, variants=variants
            )
        rows.append(row)
        m = row["methods"]
        print(
            f"{case['name']} {level['name']}: input {m['input']['res_fsc0.5_angstrom']:.2f} "
            f"classical {m['classical']['res_fsc0.5_angstrom']:.2f} prior {m['prior']['res_fsc0.5_angstrom']:.2f} "
            f"guard {m['prior+guard']['res_fsc0.5_angstrom']:.2f} v2 {m['prior+guard_v2']['res_fsc0.5_angstrom']:.2f} A; "
            f"noise ratio {row['pure_noise_rms_ratio']:.3f}; "
            f"{seconds:.1f} s",
            flush=True,
        )
    return rows


def timings(prior, settings, sizes) -> dict:
    out = {}
    rng = np.random.default_rng(0)
    for n in sizes:
        vol = rng.normal(size=(n, n, n))
        enhance_map(
            vol[:32, :32, :32],
            voxel_size_angstrom=prior.voxel_size_angstrom,
            prior=prior,
            settings=settings,
        )
        t0 = time.perf_counter()
        res = enhance_map(
            vol, voxel_size_angstrom=prior.voxel_size_angstrom, prior=prior, settings=settings
        )
        out[str(n)] = {"seconds": time.perf_counter() - t0, "tiles": res.info["tiles"]}
        print(
            f"inference {n}^3: {out[str(n)]['seconds']:.1f} s ({res.info['tiles']} tiles)",
            flush=True,
        )
    return out


def _parent_text(parent: dict | None) -> str:
    if not parent:
        return ""
    minutes = (parent.get("training_seconds") or 0) / 60
    return (
        f", fine-tuned from `{parent['weights']}` ({parent.get('steps')} steps, {minutes:.1f} min)"
    )


METHOD_COLUMNS = (
    ("input", "input"),
    ("classical", "classical (FSC filter + mask)"),
    ("prior", "prior"),
    ("prior+guard", "prior + guard v1 (raw half)"),
    ("prior+guard(wiener)", "prior + guard v1 (FSC-weighted half)"),
    ("prior+guard_v2", "prior + guard v2 (raw half)"),
    ("prior+guard_v2(wiener)", "prior + guard v2 (FSC-weighted half)"),
)


def _cell(m: dict | None) -> str:
    if m is None:
        return "-"
    return (
        f"{m['res_fsc0.5_angstrom']:.2f} / {m['res_fsc0.143_angstrom']:.2f}, "
        f"cc {m['cc_in_molecule']:.3f}"
    )


def _target_cell(m: dict | None, ref: dict) -> str:
    """Guard v2 against the classical filter: finer-or-equal FSC 0.5 and higher-or-equal cc."""
    if m is None:
        return "-"
    gain = (
        100 * (ref["res_fsc0.5_angstrom"] - m["res_fsc0.5_angstrom"]) / ref["res_fsc0.5_angstrom"]
    )
    dcc = m["cc_in_molecule"] - ref["cc_in_molecule"]
    met = gain >= 0 and dcc >= 0
    return f"{gain:+.1f} %, cc {dcc:+.3f}: {'met' if met else 'NOT met'}"


def markdown(result: dict) -> str:
    meta = result["weights"]
    header = " | ".join(title for _, title in METHOD_COLUMNS)
    lines = [
        "# The learned prior against the truth (held-out 5a1a, 6bdf)",
        "",
        f"Weights: `{meta['source']}` ({meta['steps']} steps, {meta['training_minutes']:.1f} min on "
        f"{meta['device']}{_parent_text(meta.get('parent'))}); threads: {result['threads']}; "
        f"machine: {result['machine']}.",
        "Made by `benchmarks/prior_eval.py` (its docstring says how the inputs are simulated)"
        + (f": `{result['command']}`." if result.get("command") else "."),
        "",
        "Resolution where the FSC against the truth falls to 0.5 / 0.143 (A), and the real-space",
        "correlation with the truth inside the molecule:",
        "",
        f"| protein | level | half-map FSC0.5 | {header} |",
        "|---|---|---|" + "---|" * len(METHOD_COLUMNS),
    ]
    for r in result["rows"]:
        cells = [_cell(r["methods"].get(k)) for k, _ in METHOD_COLUMNS]
        lines.append(
            f"| {r['protein']} | {r['level']} | {r['half_map_fsc0.5_angstrom']:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "Targets of guard v2 (issue 16): at least as good as the classical filter at FSC 0.5",
        "against the truth (gain in %, positive = finer) and in correlation (difference):",
        "",
        "| protein | level | guard v2 (raw half) | guard v2 (FSC-weighted half) | guard v1 (raw half) |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        m = r["methods"]
        ref = m["classical"]
        lines.append(
            f"| {r['protein']} | {r['level']} | {_target_cell(m.get('prior+guard_v2'), ref)} | "
            f"{_target_cell(m.get('prior+guard_v2(wiener)'), ref)} | "
            f"{_target_cell(m.get('prior+guard'), ref)} |"
        )
    lines += [
        "",
        "Pure-noise control and what the prior adds beyond the half-maps' FSC = 1/7 shell:",
        "",
        "| protein | level | noise-only output RMS / normal output RMS: prior | prior + guard v2 | beyond 1/7: cc(prior, truth) | cc(input, truth) | cc(prior - input, truth) | prior power there | guard v1 removed | guard v2 removed (raw / FSC-weighted half) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        b = r["beyond_fsc_1_7"]
        v2_noise = r.get("pure_noise_rms_ratio_guard_v2")
        v2_removed = (
            f"{r['guard_v2_power_removed_fraction']:.4f} / "
            f"{r['guard_v2_wiener_power_removed_fraction']:.4f}"
            if "guard_v2_power_removed_fraction" in r
            else "-"
        )
        lines.append(
            f"| {r['protein']} | {r['level']} | {r['pure_noise_rms_ratio']:.3f} | "
            + (f"{v2_noise:.4f}" if v2_noise is not None else "-")
            + f" | {b['prior_cc_with_truth']:.3f} | "
            f"{b['input_cc_with_truth']:.3f} | {b['added_cc_with_truth']:.3f} | {b['prior_power_fraction']:.4f} | "
            f"{r['guard_power_removed_fraction']:.4f} | {v2_removed} |"
        )
    controls = [r for r in result["rows"] if "cutoff_control" in r]
    if controls:
        lines += [
            "",
            f"Cut-off control (level {CONTROL_LEVEL}, signal low-passed at "
            f"{CONTROL_CUTOFF_ANGSTROM:g} A, noise at all frequencies): FSC 0.143 against the "
            "truth (A) / correlation with the truth over all shells beyond the cut-off / largest "
            "truth FSC in the 12 shells after it. A map the data do not support beyond the "
            "cut-off stays like the input there.",
            "",
            "| protein | one shell finer than the cut-off (A) | "
            + " | ".join(title for _, title in METHOD_COLUMNS)
            + " |",
            "|---|---|" + "---|" * len(METHOD_COLUMNS),
        ]
        for r in controls:
            c = r["cutoff_control"]
            cells = []
            for k, _ in METHOD_COLUMNS:
                m = c["methods"].get(k)
                cells.append(
                    "-"
                    if m is None
                    else f"{m['res_fsc0.143_angstrom']:.2f} / {m['cc_beyond_cutoff']:.3f} / "
                    f"{m['max_fsc_beyond_cutoff']:.3f}"
                )
            lines.append(
                f"| {r['protein']} | {c['one_shell_finer_angstrom']:.2f} | "
                + " | ".join(cells)
                + " |"
            )
    variant_rows = [r for r in result["rows"] if "guard_variants" in r]
    if variant_rows:
        lines += [
            "",
            "Guard designs (docs/guard.md): FSC 0.5 against the truth (A) and correlation in the "
            "molecule, with the raw half / the FSC-weighted half as the plain map:",
            "",
            "| design | " + " | ".join(f"{r['protein']} {r['level']}" for r in variant_rows) + " |",
            "|---|" + "---|" * len(variant_rows),
        ]
        for key, title in (
            ("classical", "classical (FSC filter + mask)"),
            ("prior", "prior, no guard"),
        ):
            cells = [
                f"{r['methods'][key]['res_fsc0.5_angstrom']:.2f}, "
                f"{r['methods'][key]['cc_in_molecule']:.3f}"
                for r in variant_rows
            ]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        for name in variant_rows[0]["guard_variants"]:
            cells = []
            for r in variant_rows:
                v = r["guard_variants"][name]
                cells.append(
                    f"{v['raw']['res_fsc0.5_angstrom']:.2f}, {v['raw']['cc_in_molecule']:.3f} / "
                    f"{v['wiener']['res_fsc0.5_angstrom']:.2f}, {v['wiener']['cc_in_molecule']:.3f}"
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    control_variants = [r for r in controls if "variants" in r["cutoff_control"]]
    if control_variants:
        lines += [
            "",
            "Guard designs in the cut-off control: correlation with the truth beyond the cut-off / "
            "largest truth FSC in the 12 shells after it (raw half; FSC-weighted half):",
            "",
            "| design | " + " | ".join(r["protein"] for r in control_variants) + " |",
            "|---|" + "---|" * len(control_variants),
        ]
        for name in control_variants[0]["cutoff_control"]["variants"]:
            cells = []
            for r in control_variants:
                v = r["cutoff_control"]["variants"][name]
                cells.append(
                    f"{v['raw']['cc_beyond_cutoff']:.3f} / {v['raw']['max_fsc_beyond_cutoff']:.3f}; "
                    f"{v['wiener']['cc_beyond_cutoff']:.3f} / {v['wiener']['max_fsc_beyond_cutoff']:.3f}"
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if result["timing"]:
        lines += [
            "",
            "Inference time (random map at the model's voxel size, default settings):",
            "",
        ]
        lines += ["| box | seconds | tiles |", "|---|---|---|"]
        for n, t in result["timing"].items():
            lines.append(f"| {n}^3 | {t['seconds']:.1f} | {t['tiles']} |")
    seconds = [r["guard_v2_seconds"] for r in result["rows"] if "guard_v2_seconds" in r]
    if seconds:
        lines += [
            "",
            f"Guard v2 time per map: {min(seconds):.1f}-{max(seconds):.1f} s (180^3-200^3).",
        ]
    if result.get("load_average"):
        lines += [
            "",
            f"1-minute load average when the run ended: {result['load_average']:.1f} (2 cores).",
        ]
    lines += ["", NOTES]
    return "\n".join(lines)


NOTES = """Notes
- "classical" filters half-map 1 by the half-map FSC per shell (the Wiener weight of one
  half-map) and multiplies by a solvent mask estimated from it; "prior" is the network alone,
  band-limited to its Nyquist (3 A); "prior + guard v1" puts the half-map back beyond the
  half-maps' FSC = 1/7 shell (and fits the greyscale to it), as the guard does with RELION's
  plain map; "prior + guard v2" keeps the prior's map beyond that shell with its RMS amplitude
  per shell capped at sqrt(FSC) x the plain map's and shells with insignificant FSC (3 SD of
  pure noise) set to zero (docs/guard.md). The guard's plain map in RELION is RELION's MAP
  reconstruction, which is already attenuated where the SNR is low (tau^2 regularization); two
  stand-ins for it: the raw half-map (pessimistic for v1: all its noise comes back; for v2 the
  cap is then the signal's expected amplitude) and the FSC-weighted half-map (the Wiener filter
  of one half, close to what RELION's regularization does; no mask; for v2 the cap is then
  about FSC x the signal's amplitude, stricter than derived).
- The FSC against the truth is blind to a scale per shell: guard v2's FSC is the prior's up to
  the last shell with significant half-map FSC; its cap changes only the correlation.
- The pure-noise ratio compares the output on the noise alone with the output on the protein
  plus the same noise (RMS in the particle sphere); for guard v2 both go through the guard, the
  noise with the FSC of the two noise halves.
- cc(prior - input, truth) beyond the 1/7 shell measures whether what the prior adds where the
  data carry no signal is the truth; values near 0 mean it is not. The cut-off control shows
  the other side: where the data hold nothing (beyond a low-pass) the prior's output still
  correlates with the truth (it extrapolates), which no guard may let through.
- The FSC is blind to scale, also to the scale of floating-point round-off: guard v2's map is
  zero beyond the first shell with insignificant half-map FSC up to round-off (5a1a control:
  1.6e-31 of its power beyond the cut-off, against 0.74 for the input), so its "largest truth
  FSC" in the control (about 0.02) is the FSC of round-off, not content."""


# --- Realistic mode (--relion-runs ROOT): plain RELION's final half-maps from CTF-affected
# images of the realistic suite (src/cryoprior/refine/config.py), scored against the truth.

REALISTIC_COLUMNS = (
    ("input", "input (the half-map)"),
    ("fsc-weighted", "FSC-weighted (no mask)"),
    ("classical", "classical (FSC filter + mask)"),
    ("prior", "prior"),
    ("prior+guard", "prior + guard v1"),
    ("prior+guard_v2", "prior + guard v2"),
)


def find_relion_runs(root: Path) -> tuple[list[dict], list[dict]]:
    """Finished plain-RELION runs of cases with signal under ``root/runs``.

    A run is ``runs/relion-<key>/`` with ``run.json`` (its case and mode), ``result.json``
    (written when the run finished and was validated) and its dataset
    ``datasets/<dataset_key>/`` complete (``dataset.json``, ``true_map.mrc``). Returns (runs,
    skipped): each run {"key", "dir", "case", "dataset_dir"}; each skipped {"key", "reason"}.
    """
    from cryoprior.io.json import read_json
    from cryoprior.refine.cases import case_from_dict, dataset_key
    from cryoprior.refine.run import run_key

    runs, skipped = [], []
    for run_dir in sorted((root / "runs").glob("relion-*")):
        record = read_json(run_dir / "run.json")
        if record is None or record.get("mode") != "relion" or "case" not in record:
            skipped.append({"key": run_dir.name, "reason": "no complete run.json of mode relion"})
            continue
        # the case's other modes do not matter here (and an older run names renamed ones)
        case = case_from_dict({**record["case"], "modes": ["relion"]})
        if case.pure_noise:
            skipped.append({"key": run_dir.name, "reason": f"{case.name}: pure noise"})
            continue
        if run_key(case, "relion") != run_dir.name:
            skipped.append(
                {"key": run_dir.name, "reason": f"{case.name}: key differs from run.json's case"}
            )
            continue
        if read_json(run_dir / "result.json") is None:
            skipped.append({"key": run_dir.name, "reason": f"{case.name}: not finished"})
            continue
        dataset_dir = root / "datasets" / dataset_key(case.simulation)
        if read_json(dataset_dir / "dataset.json") is None:
            skipped.append(
                {
                    "key": run_dir.name,
                    "reason": f"{dataset_dir}: no complete dataset (dataset.json)",
                }
            )
            continue
        runs.append({"key": run_dir.name, "dir": run_dir, "case": case, "dataset_dir": dataset_dir})
    return runs, skipped


def run_relion_case(run: dict, regularizer) -> dict:
    """Score one plain-RELION run: input, classical, prior, prior + guard v1 / v2 vs the truth.

    The half-maps are RELION's final unfiltered half-maps; the FSC is their unmasked FSC (what
    the hook receives as RELION's gold-standard FSC); the plain map of the guards is half-map
    1 itself (RELION's own reconstruction of that half). ``regularizer`` (a
    ``PriorRegularizer``) runs as the hook runs it: its inference settings, the case's voxel size and particle
    diameter, the current resolution from that FSC). The truth is the dataset's
    ``true_map.mrc`` (for a belted case: protein + belt, what the particles hold), the
    envelope ``model_envelope`` of it, as in the synthetic mode.
    """
    from cryoprior.io.json import read_json
    from cryoprior.io.mrc import read_map
    from cryoprior.io.relion import find_relion_job_files
    from cryoprior.regularizers.base import RegularizationContext
    from cryoprior.regularizers.prior import current_resolution_angstrom

    case, run_dir, dataset_dir = run["case"], run["dir"], run["dataset_dir"]
    voxel = case.simulation.voxel_size_angstrom
    files = find_relion_job_files(run_dir / "Refine3D")
    if not files.finished:
        raise FileNotFoundError(f"{run_dir / 'Refine3D'}: no final half-maps")
    h1 = read_map(files.half_map_1, dtype=np.float64)
    h2 = read_map(files.half_map_2, dtype=np.float64)
    truth = read_map(dataset_dir / "true_map.mrc", dtype=np.float64)
    if not h1.shape == h2.shape == truth.shape:
        raise ValueError(
            f"{run_dir}: half-maps {h1.shape}, {h2.shape} and truth {truth.shape} differ in shape"
        )
    n = truth.shape[0]
    envelope = model_envelope(truth, voxel_size_angstrom=voxel)
    half_fsc = fourier_shell_correlation(h1, h2)
    context = RegularizationContext(
        voxel_size_angstrom=voxel,
        particle_diameter_angstrom=case.refine.particle_diameter_angstrom,
        gold_standard_fsc=half_fsc,
    )

    def variants(half, enhanced):
        """The maps scored for one half-map (itself as the guards' plain map), guard reports."""
        guarded, report = apply_guard(enhanced, half, fsc=half_fsc, settings=GUARD_V1)
        v2, report_v2 = apply_guard(enhanced, half, fsc=half_fsc, settings=GUARD_V2)
        maps = {
            "input": half,
            "fsc-weighted": fsc_weighted(half, half_fsc),
            "classical": classical(half, half_fsc, voxel),
            "prior": enhanced,
            "prior+guard": guarded,
            "prior+guard_v2": v2,
        }
        return maps, report, report_v2

    t0 = time.perf_counter()
    enhanced = regularizer.regularize(h1, context=context)
    seconds = time.perf_counter() - t0
    info = dict(regularizer.last_info or {})
    maps, report, report_v2 = variants(h1, enhanced)
    # half-map 2 the same way (its own prior output, itself as the plain map): a second look
    maps_2, _, _ = variants(h2, regularizer.regularize(h2, context=context))
    result = read_json(run_dir / "result.json") or {}
    sim = case.simulation
    row = {
        "key": run["key"],
        "case": case.name,
        "title": case.title,
        "random_seed": case.refine.random_seed,
        "half_split_seed": case.refine.half_split_seed,
        "dataset": dataset_dir.name,
        "model": sim.model,
        "n_particles": sim.n_particles,
        "box": n,
        "voxel_size_angstrom": voxel,
        "belt_width_angstrom": sim.belt_width_angstrom,
        "truth_map": "true_map.mrc",
        "half_maps": [files.half_map_1.name, files.half_map_2.name],
        "half_map_fsc0.5_angstrom": resolution_at_threshold(
            half_fsc, threshold=0.5, box_size=n, voxel_size_angstrom=voxel
        ),
        "half_map_fsc0.143_angstrom": resolution_at_threshold(
            half_fsc, threshold=0.143, box_size=n, voxel_size_angstrom=voxel
        ),
        "current_resolution_angstrom": current_resolution_angstrom(
            half_fsc, box_size=n, voxel_size_angstrom=voxel
        ),
        "relion_validation_summary": result.get("summary"),
        "methods": {k: scores(v, truth, envelope, voxel) for k, v in maps.items()},
        "methods_half2": {k: scores(v, truth, envelope, voxel) for k, v in maps_2.items()},
        "guard_power_removed_fraction": report.power_removed_fraction,
        "guard_v2_power_removed_fraction": report_v2.power_removed_fraction,
        "beyond_fsc_1_7": beyond_cutoff(enhanced, h1, truth, fsc_cutoff_shell(half_fsc)),
        "prior_seconds": seconds,
        "prior_info": {
            k: v
            for k, v in info.items()
            if k in ("model_box", "model_voxel_size_angstrom", "tiles", "torch_threads")
        },
        "prior_settings": {
            "tile_size": regularizer.settings.tile_size,
            "voxels_per_resolution": regularizer.settings.voxels_per_resolution,
            "normalisation": regularizer.settings.normalisation,
        },
    }
    protein_path = dataset_dir / "true_map_protein.mrc"
    if sim.belt_width_angstrom > 0 and protein_path.is_file():
        protein = read_map(protein_path, dtype=np.float64)
        protein_envelope = model_envelope(protein, voxel_size_angstrom=voxel)
        row["methods_vs_protein_only"] = {
            k: scores(v, protein, protein_envelope, voxel) for k, v in maps.items()
        }
    m = row["methods"]
    print(
        f"{case.name} ({run['key']}): "
        + ", ".join(
            f"{k} {m[k]['res_fsc0.5_angstrom']:.2f} A cc {m[k]['cc_in_molecule']:.3f}" for k in m
        )
        + f"; prior {seconds:.1f} s",
        flush=True,
    )
    return row


def realistic_markdown(result: dict) -> str:
    meta = result["weights"]
    header = " | ".join(title for _, title in REALISTIC_COLUMNS)
    lines = [
        "# The learned prior against the truth on plain RELION's final half-maps (realistic suite)",
        "",
        f"Made by `benchmarks/prior_eval.py --relion-runs ROOT` on {result['date']}: "
        f"`{result['command']}`; weights `{meta['source']}` ({meta['steps']} steps"
        f"{_parent_text(meta.get('parent'))}); machine: {result['machine']}.",
        "",
        "Inputs: the final unfiltered half-maps (`Refine3D/run_half{1,2}_class001_unfil.mrc`) of "
        "plain RELION 3.1 runs (mode `relion`) of the realistic suite "
        "(`src/cryoprior/refine/config.py`: CTF-affected images, defocus 0.8-2.5 um, envelope "
        "B 100 A^2, SNR 0.03), scored against the dataset's `true_map.mrc`. Half-map 1 is scored; "
        "the FSC the classical filter and the guards use is the two half-maps' unmasked FSC "
        "(as the hook receives RELION's gold-standard FSC); the guards' plain map is half-map 1 "
        "itself; the prior runs as the hook runs it (`PriorRegularizer` defaults, the case's "
        "voxel size and particle diameter).",
        "",
        "Runs used:",
        "",
        "| case | run key | dataset | particles | RELION seed | half-split seed | box, voxel (A) "
        "| belt (A) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['case']} | `{r['key']}` | `{r['dataset']}` | {r.get('n_particles', '-')} | "
            f"{r['random_seed']} | "
            f"{r['half_split_seed'] if r['half_split_seed'] is not None else 'RELION own'} | "
            f"{r['box']}, {r['voxel_size_angstrom']:g} | {r['belt_width_angstrom']:g} |"
        )
    lines += [
        "",
        "Resolution where the FSC against the truth falls to 0.5 / 0.143 (A), and the real-space",
        "correlation with the truth inside the molecule (envelope of the truth > 0.5):",
        "",
        f"| case | half-map FSC 0.5 / 0.143 (A) | {header} |",
        "|---|---|" + "---|" * len(REALISTIC_COLUMNS),
    ]
    for r in result["rows"]:
        cells = [_cell(r["methods"].get(k)) for k, _ in REALISTIC_COLUMNS]
        lines.append(
            f"| {r['case']} | {r['half_map_fsc0.5_angstrom']:.2f} / "
            f"{r['half_map_fsc0.143_angstrom']:.2f} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Against the classical filter (FSC 0.5 against the truth: gain in %, positive = finer; "
        "correlation: difference; met = both at least as good):",
        "",
        "| case | prior + guard v2 | prior + guard v1 | prior (no guard) | "
        "prior + guard v2 against the input (not classical) |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        m = r["methods"]
        ref = m["classical"]
        lines.append(
            f"| {r['case']} | {_target_cell(m.get('prior+guard_v2'), ref)} | "
            f"{_target_cell(m.get('prior+guard'), ref)} | {_target_cell(m.get('prior'), ref)} | "
            f"{_target_cell(m.get('prior+guard_v2'), m['input'])} |"
        )
    lines += [
        "",
        "Half-map 2 the same way (its own prior output and guards, itself as the plain map): FSC "
        "0.5 against the truth (A), correlation in the molecule:",
        "",
        f"| case | {header} |",
        "|---|" + "---|" * len(REALISTIC_COLUMNS),
    ]
    for r in result["rows"]:
        cells = [
            f"{m['res_fsc0.5_angstrom']:.2f}, cc {m['cc_in_molecule']:.3f}"
            for m in (r["methods_half2"][k] for k, _ in REALISTIC_COLUMNS)
        ]
        lines.append(f"| {r['case']} | " + " | ".join(cells) + " |")
    belted = [r for r in result["rows"] if "methods_vs_protein_only" in r]
    if belted:
        lines += [
            "",
            "Belted cases, also against the protein alone (`true_map_protein.mrc`, envelope of "
            "it; the table above scores against protein + belt, what the particles hold):",
            "",
            f"| case | {header} |",
            "|---|" + "---|" * len(REALISTIC_COLUMNS),
        ]
        for r in belted:
            cells = [_cell(r["methods_vs_protein_only"].get(k)) for k, _ in REALISTIC_COLUMNS]
            lines.append(f"| {r['case']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Beyond the half-maps' FSC = 1/7 shell, the prior's correlation with the truth, the "
        "input's, and that of what the prior added; the guards' share of power removed:",
        "",
        "| case | current resolution (A) | network voxel (A), box | cc(prior, truth) | "
        "cc(input, truth) | cc(prior - input, truth) | guard v1 removed | guard v2 removed | "
        "prior seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        b, info = r["beyond_fsc_1_7"], r["prior_info"]
        current = r["current_resolution_angstrom"]
        lines.append(
            f"| {r['case']} | {'-' if current is None else f'{current:.2f}'} | "
            f"{info.get('model_voxel_size_angstrom', float('nan')):.2f}, {info.get('model_box')} | "
            f"{b['prior_cc_with_truth']:.3f} | {b['input_cc_with_truth']:.3f} | "
            f"{b['added_cc_with_truth']:.3f} | {r['guard_power_removed_fraction']:.4f} | "
            f"{r['guard_v2_power_removed_fraction']:.4f} | {r['prior_seconds']:.0f} |"
        )
    lines += [
        "",
        "For reference, the runs' own validation (`result.json`): RELION's full map against the "
        "truth, FSC 0.5 / 0.143 (A):",
        "",
        "| case | full map vs truth |",
        "|---|---|",
    ]
    for r in result["rows"]:
        s = r.get("relion_validation_summary") or {}
        a, b = s.get("truth_fsc_05_angstrom"), s.get("truth_fsc_0143_angstrom")
        lines.append(
            f"| {r['case']} | " + ("-" if a is None or b is None else f"{a:.2f} / {b:.2f}") + " |"
        )
    if result.get("skipped"):
        lines += ["", "Runs under ROOT not scored:", ""]
        lines += [f"- `{s['key']}`: {s['reason']}" for s in result["skipped"]]
    if result.get("load_average"):
        lines += [
            "",
            f"1-minute load average when the run ended: {result['load_average']:.1f} (2 cores, "
            "shared with the suite's refinements).",
        ]
    lines += ["", REALISTIC_NOTES]
    return "\n".join(lines)


REALISTIC_NOTES = """Notes
- Unlike the synthetic table, the noise here is what RELION's reconstruction leaves (CTF,
  pose errors, RELION's own tau^2 regularization) and the half-maps' FSC is not shaped by
  construction; half-map 1 is the main table, half-map 2 a second look; one run per case
  and seed (no error bars across runs).
- "classical", the guards and the FSC: as in the synthetic mode (benchmarks/results/prior_eval.md
  notes), with RELION's unfiltered half-map as the guards' plain map (in a refinement the
  hook's plain map is RELION's own reconstruction of that half, already tau^2-regularized).
- RELION's half-map is already its regularized (Wiener-like) reconstruction: weighting it by
  the FSC once more over-attenuates, and the FSC-weighted map correlates less with the truth
  than the input (column "FSC-weighted"); the classical filter's gain at FSC 0.5 comes from
  its solvent mask. The classical reference is therefore a weak bar for the correlation; the
  last column compares guard v2 with the unfiltered half-map instead.
- The voxel is 2.5 A: FSC 0.143 against the truth reaches Nyquist (5 A) for most maps here,
  so that column hardly separates the variants; FSC 0.5 and the correlation do. Guard v2 zeros
  shells with insignificant half-map FSC, so its FSC 0.143 against the truth can be coarser
  than the prior's while its content is the same (synthetic notes: the FSC is blind to scale).
- For a belted case the truth is protein + belt (what the particles hold); the prior was
  trained on proteins without a belt, so the case is also scored against the protein alone
  (its own envelope, which leaves the belt out).
- The FSC against the truth is unmasked: noise in the solvent counts, so a map whose solvent
  is flat gains at FSC 0.5 (the classical filter through its mask, the prior by its own
  flattening); the correlation is taken inside the molecule only."""


def realistic_main(args) -> None:
    from cryoprior.errors import InputFileError
    from cryoprior.regularizers.prior import PriorRegularizer

    root = Path(args.relion_runs)
    if not (root / "runs").is_dir():
        sys.exit(f"{root}: no runs/ folder (not a benchmark root)")
    runs, skipped = find_relion_runs(root)
    if not runs:
        sys.exit(f"{root}: no finished plain-RELION run of a case with signal under runs/")
    regularizer = PriorRegularizer(args.weights, num_threads=args.threads)
    rows = []
    for run in runs:
        try:
            rows.append(run_relion_case(run, regularizer))
        except (InputFileError, FileNotFoundError, ValueError) as exc:
            print(f"{run['key']}: skipped: {exc}", file=sys.stderr)
            skipped.append({"key": run["key"], "reason": str(exc)})
    if not rows:
        sys.exit(f"{root}: no run could be scored")
    prior = regularizer.prior
    meta = prior.metadata
    result = {
        "mode": "relion-runs",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/prior_eval.py " + " ".join(sys.argv[1:]),
        "weights": {
            "source": Path(prior.source).name,
            "steps": meta.get("steps"),
            "training_minutes": (meta.get("training_seconds") or 0) / 60,
            "device": meta.get("device"),
            "parent": meta.get("parent"),
        },
        "threads": args.threads,
        "machine": f"{platform.machine()}, {args.threads} torch threads, {platform.python_version()}",
        "rows": rows,
        "skipped": skipped,
        "load_average": os.getloadavg()[0],
    }
    out = Path(args.out) if args.out else RESULTS / "prior_eval_realistic"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    out.with_suffix(".md").write_text(realistic_markdown(result))
    print(f"wrote {out}.json and .md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one level per protein, no timing")
    parser.add_argument("--levels", nargs="*", help="only these levels (d4.5 d6 d8 d11), no timing")
    parser.add_argument("--cases", nargs="*", help="only these proteins (5a1a 6bdf), no timing")
    parser.add_argument(
        "--guard-variants",
        action="store_true",
        help="also score the guard designs of docs/guard.md (GUARD_VARIANTS), no timing",
    )
    parser.add_argument(
        "--tile-size", type=int, default=InferenceSettings().tile_size, help="largest tile edge"
    )
    parser.add_argument(
        "--voxels-per-resolution",
        type=float,
        default=None,
        help="resolution-adaptive inference: the network's voxel is max(1.5 A, d / this), "
        "d the half-maps' FSC = 1/7 resolution (default: always the model's voxel)",
    )
    parser.add_argument(
        "--normalisation",
        default=InferenceSettings().normalisation,
        help="group-norm statistics: tile | map | particle (InferenceSettings.normalisation)",
    )
    parser.add_argument(
        "--relion-runs",
        metavar="ROOT",
        help="score plain RELION's final half-maps of the finished runs under ROOT (a "
        "`cryoprior benchmark --root`) instead, the prior with the hook's inference settings "
        "(--tile-size, --voxels-per-resolution, --normalisation do not apply); writes "
        "results/prior_eval_realistic.{json,md}",
    )
    parser.add_argument(
        "--out", help="output path without suffix (default results/prior_eval[_realistic])"
    )
    parser.add_argument(
        "--markdown-only", action="store_true", help="rewrite the .md from the .json"
    )
    args = parser.parse_args()
    if args.relion_runs and not args.markdown_only:
        realistic_main(args)
        return
    default = "prior_eval_realistic" if args.relion_runs else "prior_eval"
    out = Path(args.out) if args.out else RESULTS / default
    if args.markdown_only:
        data = json.loads(out.with_suffix(".json").read_text())
        write = realistic_markdown if data.get("mode") == "relion-runs" else markdown
        out.with_suffix(".md").write_text(write(data))
        return
    torch.set_num_threads(args.threads)
    prior = load_prior(args.weights)
    settings = InferenceSettings(
        tile_size=args.tile_size,
        voxels_per_resolution=args.voxels_per_resolution,
        normalisation=args.normalisation,
    )
    levels = LEVELS[1:2] if args.quick else LEVELS
    if args.levels:
        levels = [lv for lv in LEVELS if lv["name"] in args.levels]
    cases = [c for c in CASES if not args.cases or c["name"] in args.cases]
    rows = []
    for case in cases:
        rows += run_case(case, prior, settings, levels, variants=args.guard_variants)
    meta = prior.metadata
    result = {
        "weights": {
            "source": Path(prior.source).name,
            "steps": meta.get("steps"),
            "training_minutes": (meta.get("training_seconds") or 0) / 60,
            "device": meta.get("device"),
            "parent": meta.get("parent"),
        },
        "threads": args.threads,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.python_version()}",
        "rows": rows,
        "settings": {
            "tile_size": settings.tile_size,
            "overlap": settings.overlap,
            "voxels_per_resolution": settings.voxels_per_resolution,
            "normalisation": settings.normalisation,
        },
        "timing": {}
        if args.quick or args.levels or args.cases or args.guard_variants
        else timings(prior, settings, (64, 128, 256)),
        "command": "python benchmarks/prior_eval.py " + " ".join(sys.argv[1:]),
        "load_average": os.getloadavg()[0],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {out}.json and .md")


if __name__ == "__main__":
    main()
