"""The configuration of a simulated dataset: one frozen dataclass, checked when made.

A configuration file (TOML or JSON, read by :func:`cryoprior.simulate.dataset.load_config`)
uses the field names as keys, and so does ``cryoprior simulate`` for its options
(``box_size`` is ``--box-size``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["SimulationConfig", "config_from_dict"]


@dataclass(frozen=True)
class SimulationConfig:
    """Every parameter of a simulated dataset (one flat table: file keys = field names).

    Source
    ------
    model: a shipped model name (``beta-galactosidase``, ``proteasome``) or a PDB/mmCIF
        path (gzip too). Ignored when ``map_path`` is given.
    map_path: an MRC map to project instead of a model (cubic, centre at voxel N//2).
    box_size: N; None: the map's size, or for a model the smallest even box holding the
        model's largest radius plus 10 A of solvent on each side.
    voxel_size_angstrom: None: the map's header value, or 1.0 for a model.
    b_factor_angstrom2: None keeps the model's B-factors; a number replaces all of them.
    density_oversampling: gemmi grid oversampling (see ``model_to_map``).
    remove_waters: drop the model's waters.
    belt_width_angstrom: > 0 wraps a detergent-micelle-like belt of this radial width around
        the model's transmembrane band (:mod:`cryoprior.simulate.belt`: the band is found from
        the residues); 0: none. The particles and ``true_map.mrc`` hold the belt;
        ``true_map_protein.mrc`` is the protein alone.
    belt_relative_density: the belt's density relative to the protein's mean density.
    belt_roughness_angstrom: amplitude of the belt outline's smooth random modulation.

    Orientations
    ------------
    orientations: ``uniform`` (random over SO(3)), ``grid`` (even directions at
        ``angular_step_degrees``, random psi) or ``star`` (the poses of ``angles_star``).
    n_particles: number of uniform random poses (``uniform`` only).
    angular_step_degrees: step of the ``grid`` (the paper: 1.5 -> 18,338 directions).
    angles_star: STAR file with rlnAngleRot/Tilt/Psi (and optionally rlnOriginX/YAngst).
    cone_overrepresentation: >= 1; views inside the tilt cone are made this many times as
        dense by adding views there (1: isotropic; the paper's proteasome set of 24,359 views
        is ``grid`` at 1.5 degrees with 3.8401 in the cone 0-40 degrees).
    cone_tilt_min_degrees, cone_tilt_max_degrees: the cone (the paper: tilt 0-40).
    shift_sd_angstrom: SD of random origins added in x and y (Angstrom).

    Image formation
    ---------------
    ctf: apply a CTF (RELION's convention) and write the CTF parameters to the STAR files.
    defocus_min_angstrom, defocus_max_angstrom: defocus U drawn uniformly in this range.
    astigmatism_angstrom: defocus U - defocus V; the angle is uniform in [0, 180).
    voltage_kv, spherical_aberration_mm, amplitude_contrast: optics (written also without CTF).
    envelope_b_factor_angstrom2: B of the images' envelope ``exp(-B s^2 / 4)`` (what beam-induced
        motion, radiation damage and the detector do to real micrographs; 50-150 A^2 is
        typical): applied to every signal image after the CTF and unknown to RELION (the
        STAR's ``rlnCtfBfactor`` stays 0), so the reconstruction carries it as real maps do;
        the truth map is not blurred by it. 0: none.
    lowpass_resolution_angstrom: low-pass the projections (the paper: 3, 5, 8 A); None: no.
    lowpass_width_frequency: raised-cosine width in frequency normalised to 0.5 (0.0064).
    noise_sd: Gaussian noise SD in image units (the paper: 50-1000); exclusive with ``snr``.
    snr: target SNR instead: the noise SD is ``mean(std of clean images) / sqrt(snr)`` over
        the first 500 signal particles (after CTF and low-pass). Neither: noise-free images.
    n_pure_noise: pure-noise particles (no signal, the same noise) mixed in at random places.
    pure_noise_only: make every particle pure noise (the count is that of the poses plus
        ``n_pure_noise``).

    Outputs and run
    ---------------
    reference_lowpass_angstrom: resolution of the initial reference (the true map low-passed
        with a raised cosine 2 Fourier voxels wide).
    seed: the seed of every random stream.
    batch_size: particles per projection batch (index-aligned blocks; the images do not depend
        on it beyond float rounding, and not at all on ``particles_per_stack``). None: about
        4 million pixels per batch (1024 particles at box 64, 256 at 128, 64 at 256).
    particles_per_stack: particles per ``.mrcs`` file.
    padding_factor: Fourier padding of the projector (RELION's default 2).
    device: torch device, or ``auto`` (a GPU when there is one).
    backend: projector backend: ``eager``, ``compiled`` (``torch.compile``: its interpolation
        is 2-3 times faster on 2 CPU cores, after a compilation of about 11 s the first time on
        a machine and 2 s later), or ``auto``: compiled on CPU for datasets where that pays
        (particles x (box/128)^2 >= 20000), else eager.
    """

    model: str = "beta-galactosidase"
    map_path: str | None = None
    box_size: int | None = None
    voxel_size_angstrom: float | None = None
    b_factor_angstrom2: float | None = None
    density_oversampling: int = 2
    remove_waters: bool = False
    belt_width_angstrom: float = 0.0
    belt_relative_density: float = 0.4
    belt_roughness_angstrom: float = 3.0

    orientations: str = "uniform"
    n_particles: int = 1000
    angular_step_degrees: float = 1.5
    angles_star: str | None = None
    cone_overrepresentation: float = 1.0
    cone_tilt_min_degrees: float = 0.0
    cone_tilt_max_degrees: float = 40.0
    shift_sd_angstrom: float = 0.0

    ctf: bool = False
    defocus_min_angstrom: float = 10000.0
    defocus_max_angstrom: float = 25000.0
    astigmatism_angstrom: float = 0.0
    voltage_kv: float = 300.0
    spherical_aberration_mm: float = 2.7
    amplitude_contrast: float = 0.1
    envelope_b_factor_angstrom2: float = 0.0
    lowpass_resolution_angstrom: float | None = None
    lowpass_width_frequency: float = 0.0064
    noise_sd: float | None = None
    snr: float | None = None
    n_pure_noise: int = 0
    pure_noise_only: bool = False

    reference_lowpass_angstrom: float = 20.0
    seed: int = 0
    batch_size: int | None = None
    particles_per_stack: int = 10000
    padding_factor: float = 2.0
    device: str = "auto"
    backend: str = "auto"

    def __post_init__(self) -> None:
        """Check every field; one ValueError lists all the problems found.

        A whole number given for a float field (``100`` from a TOML file or the command line)
        becomes that float, so that the record and the benchmark's cache key do not depend on
        how the number was written.
        """
        problems = []
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.type in ("float", "float | None") and type(value) is int:
                value = float(value)
                object.__setattr__(self, item.name, value)
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{item.name} must be a finite number, not {value}")
        if problems:  # NaN passes no comparison below: stop here
            raise ValueError("; ".join(problems))
        if self.orientations not in ("uniform", "grid", "star"):
            problems.append(
                f"orientations must be uniform, grid or star, not {self.orientations!r}"
            )
        if self.orientations == "star" and not self.angles_star:
            problems.append("orientations 'star' needs angles_star")
        if self.orientations == "uniform" and self.n_particles < 0:
            problems.append("n_particles must be >= 0")
        if self.orientations == "grid" and not 0 < self.angular_step_degrees <= 180:
            problems.append(
                f"angular_step_degrees must be in (0, 180], not {self.angular_step_degrees}"
            )
        if self.cone_overrepresentation > 1 and not (
            0 <= self.cone_tilt_min_degrees < self.cone_tilt_max_degrees <= 180
        ):
            problems.append("need 0 <= cone_tilt_min_degrees < cone_tilt_max_degrees <= 180")
        if self.box_size is not None and (self.box_size < 8 or self.box_size % 2):
            problems.append(f"box_size must be even and >= 8, not {self.box_size}")
        if self.voxel_size_angstrom is not None and self.voxel_size_angstrom <= 0:
            problems.append("voxel_size_angstrom must be positive")
        if self.noise_sd is not None and self.snr is not None:
            problems.append("give noise_sd or snr, not both")
        if self.noise_sd is not None and self.noise_sd < 0:
            problems.append("noise_sd must be >= 0")
        if self.snr is not None and self.snr <= 0:
            problems.append("snr must be positive")
        if self.cone_overrepresentation < 1:
            problems.append("cone_overrepresentation must be >= 1")
        if self.shift_sd_angstrom < 0:
            problems.append("shift_sd_angstrom must be >= 0")
        if min(self.belt_width_angstrom, self.belt_relative_density) < 0:
            problems.append("belt_width_angstrom and belt_relative_density must be >= 0")
        if self.belt_roughness_angstrom < 0:
            problems.append("belt_roughness_angstrom must be >= 0")
        if self.belt_width_angstrom > 0 and self.map_path:
            problems.append("a membrane belt needs an atomic model (belt_width_angstrom > 0)")
        if self.n_pure_noise < 0:
            problems.append("n_pure_noise must be >= 0")
        if not 0 < self.defocus_min_angstrom <= self.defocus_max_angstrom:
            problems.append("need 0 < defocus_min_angstrom <= defocus_max_angstrom")
        if self.seed < 0:
            problems.append("seed must be >= 0")
        if (self.batch_size is not None and self.batch_size < 1) or self.particles_per_stack < 1:
            problems.append("batch_size and particles_per_stack must be >= 1")
        if self.reference_lowpass_angstrom <= 0:
            problems.append("reference_lowpass_angstrom must be positive")
        if self.lowpass_resolution_angstrom is not None and self.lowpass_resolution_angstrom <= 0:
            problems.append("lowpass_resolution_angstrom must be positive")
        if not self.envelope_b_factor_angstrom2 >= 0:
            problems.append("envelope_b_factor_angstrom2 must be >= 0")
        if self.padding_factor < 1:
            problems.append(f"padding_factor must be >= 1, not {self.padding_factor}")
        if self.density_oversampling < 2:
            problems.append(f"density_oversampling must be >= 2, not {self.density_oversampling}")
        if self.voltage_kv <= 0:
            problems.append("voltage_kv must be positive")
        if self.backend not in ("auto", "eager", "compiled"):
            problems.append(f"backend must be auto, eager or compiled, not {self.backend!r}")
        if problems:
            raise ValueError("; ".join(problems))


def config_from_dict(values: dict[str, Any]) -> SimulationConfig:
    """Build a SimulationConfig from a flat dict (unknown keys are an error naming them).

    A ``simulation.json`` record (which holds the config under ``"config"``) is accepted too.
    """
    if "config" in values and isinstance(values["config"], dict):
        values = values["config"]
    known = [f.name for f in dataclasses.fields(SimulationConfig)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        named = ", ".join(_with_suggestion(key, known) for key in unknown)
        raise ValueError(f"unknown simulation parameter(s): {named} (keys are the field names)")
    return SimulationConfig(**values)


def _with_suggestion(key: str, known: list[str]) -> str:
    """``'box'`` -> ``'box (box_size?)'``: a field the key starts or resembles, if any."""
    import difflib

    close = [name for name in known if name.startswith(key + "_")]
    close += difflib.get_close_matches(key, known, n=2, cutoff=0.8)
    close = list(dict.fromkeys(close))[:2]
    return f"{key} ({' or '.join(close)}?)" if close else key
