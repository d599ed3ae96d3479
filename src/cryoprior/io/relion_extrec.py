"""The external-reconstruction contract: the job STAR and the Fourier arrays it names.

RELION writes the job STAR for each call of ``--external_reconstruct`` (RELION 3.1, 4.0 and
5.0) and the Fourier arrays beside it.

RELION runs ``$RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE <root>_external_reconstruct.star`` and
waits for the map named by ``rlnExtReconsResult``. 4.0 adds ``rlnPixelSize`` and
``rlnParticleDiameter`` to the job STAR; 5.0 writes ``# version 50001``. The files RELION
writes around a call (iteration STARs, run.out) are :mod:`cryoprior.io.relion`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryoprior.conventions import relion_round
from cryoprior.errors import InputFileError
from cryoprior.io.mrc import read_map
from cryoprior.io.star import (
    list_block_reader,
    loop_column,
    read_star,
    star_version,
    to_float,
    to_int,
    to_str,
)

__all__ = [
    "ExternalReconstructJob",
    "ExternalReconstructName",
    "parse_external_reconstruct_name",
    "read_external_reconstruct_arrays",
    "read_external_reconstruct_job",
]


_NAME_RE = re.compile(
    r"^(?P<root>.*?)(?:_it(?P<iteration>\d{3,}))?(?:_half(?P<half>[12]))?"
    r"_(?P<kind>class|body)(?P<index>\d{3,})_external_reconstruct\.star$"
)


@dataclass(frozen=True)
class ExternalReconstructName:
    """What the job STAR's file name says about the call.

    Attributes
    ----------
    output_root: the ``--o`` root of relion_refine (e.g. ``Refine3D/job001/run``).
    iteration: iteration number, or None if the name has no ``_itNNN`` (relion_reconstruct).
    half: 1 or 2 for a half-set call, None for the final joined call or classification.
    kind: ``"class"`` or ``"body"``.
    index: class or body number (1-based).
    """

    output_root: str
    iteration: int | None
    half: int | None
    kind: str
    index: int

    @property
    def is_half(self) -> bool:
        """Whether this is a call for one half (``_half1``/``_half2``), not the final joined one."""
        return self.half is not None

    @property
    def call_key(self) -> str:
        """The call without its half: ``<root name>[_itNNN]_classCCC`` (both halves share it)."""
        it = f"_it{self.iteration:03d}" if self.iteration is not None else ""
        return f"{Path(self.output_root).name}{it}_{self.kind}{self.index:03d}"

    def sibling(self, half: int) -> str:
        """Job STAR name of the same call for the given half."""
        it = f"_it{self.iteration:03d}" if self.iteration is not None else ""
        return (
            f"{self.output_root}{it}_half{half}_{self.kind}{self.index:03d}"
            "_external_reconstruct.star"
        )


def parse_external_reconstruct_name(path: str | Path) -> ExternalReconstructName | None:
    """Parse ``<root>_itNNN[_halfH]_classCCC_external_reconstruct.star``; None if it does not fit.

    Robust to underscores in the root and to iterations >= 100 (the regex anchors on the
    suffix, not on the first underscore).
    """
    match = _NAME_RE.match(str(path))
    if match is None:
        return None
    iteration = match.group("iteration")
    half = match.group("half")
    return ExternalReconstructName(
        output_root=match.group("root"),
        iteration=int(iteration) if iteration is not None else None,
        half=int(half) if half is not None else None,
        kind=match.group("kind"),
        index=int(match.group("index")),
    )


@dataclass(frozen=True)
class ExternalReconstructJob:
    """Everything ``<root>_external_reconstruct.star`` says.

    Paths are as written in the STAR (relative to relion_refine's working directory,
    which is also the external program's working directory).

    Attributes
    ----------
    star_path: the job STAR itself.
    data_real_path, data_imag_path, weight_path: the half-complex Fourier arrays.
    result_path: where the reconstructed map must be written (``rlnExtReconsResult``).
    result_star_path: optional output STAR (``rlnExtReconsResultStarfile``).
    tau2_fudge: ``rlnTau2FudgeFactor`` (T).
    padding_factor: ``rlnPaddingFactor`` (pf, a C++ float in RELION).
    reference_dimensionality: 2 or 3.
    original_image_size: box size N.
    current_image_size: 2 * r_max; data are zero beyond r_max.
    pixel_size_angstrom: RELION >= 4.0.1 only, else None.
    particle_diameter_angstrom: RELION >= 4.0.1 only, else None.
    spectral_index: (N//2+1,) int shells, or None without a tau2 block.
    tau2: (N//2+1,) float64 ``rlnReferenceTau2``, or None without a tau2 block
        (``relion_reconstruct --external_reconstruct`` writes none).
    gold_standard_fsc: (N//2+1,) float64 ``rlnGoldStandardFsc`` or None.
    star_version: 30001 (3.1, 4.0), 50001 (5.0) or None.
    """

    star_path: Path
    data_real_path: Path
    data_imag_path: Path
    weight_path: Path
    result_path: Path
    result_star_path: Path | None
    tau2_fudge: float
    padding_factor: float
    reference_dimensionality: int
    original_image_size: int
    current_image_size: int
    pixel_size_angstrom: float | None = None
    particle_diameter_angstrom: float | None = None
    spectral_index: np.ndarray | None = None
    tau2: np.ndarray | None = None
    gold_standard_fsc: np.ndarray | None = None
    star_version: int | None = None

    @property
    def padded_size(self) -> int:
        """Size of the padded Fourier arrays RELION wrote: ROUND(pf * N)."""
        return relion_round(np.float32(self.padding_factor) * self.original_image_size)

    @property
    def name(self) -> ExternalReconstructName | None:
        """The parsed job STAR name, or None when it is not RELION's naming."""
        return parse_external_reconstruct_name(self.star_path)


def _optional_length(label, rln: str, path: Path) -> float | None:
    """Return a RELION >= 4.0.1 length label (Angstrom): None when absent or 0, else positive.

    ``label`` reads the job's general block (:func:`cryoprior.io.star.list_block_reader`).
    """
    value = label(rln, to_float, required=False)
    if value is not None and (not np.isfinite(value) or value < 0):
        raise InputFileError(
            path, f"label _{rln} must be a positive length in Angstrom, not {value}"
        )
    return value or None


def _require_finite(path: Path, values: np.ndarray, what: str) -> None:
    """Raise InputFileError naming ``path`` when ``values`` hold NaN or Inf."""
    if not np.all(np.isfinite(values)):
        raise InputFileError(path, f"{what} has NaN or Inf values")


def read_external_reconstruct_job(path: str | Path) -> ExternalReconstructJob:
    """Read ``<root>_external_reconstruct.star`` (RELION 3.1, 4.0 or 5.0).

    Raises InputFileError naming the file for a missing file, a missing block or label, or
    a malformed value.
    """
    path = Path(path)
    blocks = read_star(path)
    # a one-row loop instead of a simple block is accepted
    label = list_block_reader(blocks, "external_reconstruct_general", path)

    def pth(rln: str) -> Path:
        return Path(label(rln, to_str))

    def optional_pth(rln: str) -> Path | None:
        value = label(rln, to_str, required=False)
        return None if value is None else Path(value)

    data_real = pth("rlnExtReconsDataReal")
    data_imag = optional_pth("rlnExtReconsDataImag") or Path(
        str(data_real).replace("_real", "_imag")
    )
    result_star = optional_pth("rlnExtReconsResultStarfile")
    original = label("rlnOriginalImageSize", to_int)
    current = label("rlnCurrentImageSize", to_int)
    ref_dim = label("rlnReferenceDimensionality", to_int)
    padding = label("rlnPaddingFactor", to_float)
    fudge = label("rlnTau2FudgeFactor", to_float)
    if ref_dim not in (2, 3):
        raise InputFileError(path, f"_rlnReferenceDimensionality must be 2 or 3, not {ref_dim}")
    if original <= 0 or current <= 0:
        raise InputFileError(
            path, f"image sizes must be positive (original {original}, current {current})"
        )
    if not np.isfinite(padding) or padding < 1.0:
        raise InputFileError(path, f"_rlnPaddingFactor must be >= 1, not {padding}")
    if not np.isfinite(fudge):
        raise InputFileError(path, f"_rlnTau2FudgeFactor must be a finite number, not {fudge}")

    spectral_index = tau2 = fsc = None
    if "external_reconstruct_tau2" in blocks:
        name = "external_reconstruct_tau2"
        table = blocks[name]
        if isinstance(table, dict):  # a single row written as a simple block
            table = pd.DataFrame([table])
        spectral_index = loop_column(table, "rlnSpectralIndex", np.int64, path, name, required=True)
        tau2 = loop_column(table, "rlnReferenceTau2", np.float64, path, name, required=True)
        fsc = loop_column(table, "rlnGoldStandardFsc", np.float64, path, name)
        n_shells = original // 2 + 1
        # relion_external_reconstruct takes tau2 in row order, one row per shell 0..N/2; a
        # missing row makes it read past its array (exit 1 or a crash). A deleted, extra or
        # reordered row means a damaged file: refuse it rather than guess.
        if len(table) != n_shells or not np.array_equal(spectral_index, np.arange(n_shells)):
            raise InputFileError(
                path,
                f"data_external_reconstruct_tau2 must have {n_shells} rows with "
                f"_rlnSpectralIndex 0..{n_shells - 1} in order (box {original}), found "
                f"{len(table)} rows (truncated or edited file?)",
            )
        _require_finite(path, tau2, "_rlnReferenceTau2")
        spectral_index = np.arange(n_shells)

    return ExternalReconstructJob(
        star_path=path,
        data_real_path=data_real,
        data_imag_path=data_imag,
        weight_path=pth("rlnExtReconsWeight"),
        result_path=pth("rlnExtReconsResult"),
        result_star_path=result_star,
        tau2_fudge=fudge,
        padding_factor=padding,
        reference_dimensionality=ref_dim,
        original_image_size=original,
        current_image_size=current,
        pixel_size_angstrom=_optional_length(label, "rlnPixelSize", path),
        particle_diameter_angstrom=_optional_length(label, "rlnParticleDiameter", path),
        spectral_index=spectral_index,
        tau2=tau2,
        gold_standard_fsc=fsc,
        star_version=star_version(path),
    )


def read_external_reconstruct_arrays(
    job: ExternalReconstructJob, *, base_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read the Fourier data and weight arrays of a job.

    Parameters
    ----------
    job: the parsed job STAR.
    base_dir: folder the STAR's relative paths are relative to (default: current folder,
        which is what RELION guarantees).

    Returns
    -------
    data: (Pd, Pd, Pd//2+1) complex128 (3D) or (Pd, Pd//2+1) (2D), half-complex, FFTW order
        (as ``numpy.fft.rfftn``), Pd = ROUND(pf * N).
    weight: same shape, float64.

    Raises InputFileError naming the file for a missing or malformed array.
    """
    base = Path(base_dir) if base_dir is not None else Path()
    pd_ = job.padded_size
    expected = (
        (pd_, pd_, pd_ // 2 + 1) if job.reference_dimensionality == 3 else (pd_, pd_ // 2 + 1)
    )
    arrays = []
    for p in (job.data_real_path, job.data_imag_path, job.weight_path):
        full = p if p.is_absolute() else base / p
        array = read_map(full, dtype=np.float64)
        if job.reference_dimensionality == 3 and array.ndim == 2:
            array = array[np.newaxis]
        if array.shape != expected:
            raise InputFileError(
                full,
                f"array shape {array.shape} does not match the job "
                f"(expected {expected} for box {job.original_image_size}, "
                f"padding {job.padding_factor})",
            )
        _require_finite(full, array, "the array")
        arrays.append(array)
    real, imag, weight = arrays
    return real + 1j * imag, weight


# ---------------------------------------------------------------------------------------
# Per-iteration files of relion_refine
# ---------------------------------------------------------------------------------------
