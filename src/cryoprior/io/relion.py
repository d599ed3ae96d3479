"""Typed readers for the files RELION writes for (and around) an external reconstruction.

Covers RELION 3.1 (``# version 30001``), 4.0 (extra ``rlnPixelSize`` and
``rlnParticleDiameter`` in the job STAR) and 5.0 (``# version 50001``). See
``docs`` in the repository and the design note ``relion_extrec.md`` for the protocol.

Besides the job STAR of one external-reconstruction call, this module reads the
per-iteration files relion_refine writes (``<out>_itNNN_sampling.star``,
``_optimiser.star``, ``_half1_model.star`` / ``_model.star`` and ``_data.star``); an
external program sees those of iteration N-1 while iteration N is reconstructed.

Units, as found in files written by RELION 3.1.3 (Debian build):

* ``rlnOffsetRange`` / ``rlnOffsetStep`` in ``_sampling.star`` are in Angstrom (the
  command line ``--offset_range 2 --offset_step 2`` at 4 A/px gives 8.0 in the file).
* ``rlnBestResolutionThusFar`` in ``_optimiser.star`` is a spatial frequency in 1/A
  (0.046875 = 1/21.33 A); iteration 0 holds RELION's placeholder 0.001001 = 1/999 A.
* ``rlnCurrentResolution`` in ``_model.star`` is in Angstrom (21.333333), although the
  label's documentation says 1/A; iteration 0 holds ``inf``.
* ``rlnResolution`` in the ``model_class_N`` tables is in 1/A (shell i: i / (N * pixel)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoprior.errors import InputFileError
from cryoprior.io.mrc import read_map
from cryoprior.io.star import read_star, require_block, star_version

__all__ = [
    "ExternalReconstructJob",
    "ExternalReconstructName",
    "parse_external_reconstruct_name",
    "read_external_reconstruct_job",
    "read_external_reconstruct_arrays",
    "SamplingInfo",
    "read_sampling_star",
    "OptimiserInfo",
    "read_optimiser_star",
    "ModelInfo",
    "read_model_star",
    "ParticlesTable",
    "read_particles_star",
    "IterationFiles",
    "find_iteration_files",
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
        return self.half is not None

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
        return _relion_round(np.float32(self.padding_factor) * self.original_image_size)

    @property
    def name(self) -> ExternalReconstructName | None:
        return parse_external_reconstruct_name(self.star_path)


def _relion_round(x: float) -> int:  # noqa: D401
    """RELION's ROUND macro: half away from zero (not banker's rounding)."""
    return int(np.floor(x + 0.5)) if x > 0 else int(np.ceil(x - 0.5))


def _general_value(general: dict[str, Any], label: str, path: Path, cast):
    if label not in general:
        raise InputFileError(path, f"missing label _{label} in data_external_reconstruct_general")
    value = general[label]
    try:
        return cast(value)
    except (TypeError, ValueError) as exc:
        raise InputFileError(path, f"label _{label} has a malformed value {value!r}") from exc


def _optional_length(general: dict[str, Any], label: str, path: Path) -> float | None:
    """A RELION >= 4.0.1 length label (Angstrom): None when absent or 0, else positive."""
    if label not in general:
        return None
    value = _general_value(general, label, path, _to_float)
    if not np.isfinite(value) or value < 0:
        raise InputFileError(
            path, f"label _{label} must be a positive length in Angstrom, not {general[label]!r}"
        )
    return value or None


def read_external_reconstruct_job(path: str | Path) -> ExternalReconstructJob:
    """Read ``<root>_external_reconstruct.star`` (RELION 3.1, 4.0 or 5.0).

    Raises InputFileError naming the file for a missing file, a missing block or label, or
    a malformed value.
    """
    path = Path(path)
    blocks = read_star(path)
    general = require_block(blocks, "external_reconstruct_general", path)
    if not isinstance(general, dict):
        # a one-row loop instead of a simple block: accept it
        if len(general) != 1:
            raise InputFileError(path, "data_external_reconstruct_general is not a simple block")
        general = general.iloc[0].to_dict()

    def pth(label: str) -> Path:
        return Path(str(_general_value(general, label, path, str)))

    data_real = pth("rlnExtReconsDataReal")
    data_imag = (
        pth("rlnExtReconsDataImag")
        if "rlnExtReconsDataImag" in general
        else Path(str(data_real).replace("_real", "_imag"))
    )
    result_star = (
        Path(str(general["rlnExtReconsResultStarfile"]))
        if "rlnExtReconsResultStarfile" in general
        else None
    )
    original = _general_value(general, "rlnOriginalImageSize", path, int)
    current = _general_value(general, "rlnCurrentImageSize", path, int)
    ref_dim = _general_value(general, "rlnReferenceDimensionality", path, int)
    padding = _general_value(general, "rlnPaddingFactor", path, float)
    fudge = _general_value(general, "rlnTau2FudgeFactor", path, float)
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
        table = blocks["external_reconstruct_tau2"]
        if isinstance(table, dict):  # a single row written as a simple block
            table = pd.DataFrame([table])
        for label in ("rlnSpectralIndex", "rlnReferenceTau2"):
            if label not in table.columns:
                raise InputFileError(
                    path, f"missing column _{label} in data_external_reconstruct_tau2"
                )
        try:
            spectral_index = table["rlnSpectralIndex"].to_numpy(dtype=np.int64)
            tau2_values = table["rlnReferenceTau2"].to_numpy(dtype=np.float64)
            fsc_values = (
                table["rlnGoldStandardFsc"].to_numpy(dtype=np.float64)
                if "rlnGoldStandardFsc" in table.columns
                else None
            )
        except (TypeError, ValueError) as exc:
            raise InputFileError(
                path, f"non-numeric values in data_external_reconstruct_tau2 ({exc})"
            ) from exc
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
        if not np.all(np.isfinite(tau2_values)):
            raise InputFileError(path, "_rlnReferenceTau2 has NaN or Inf values")
        tau2 = tau2_values.copy()
        fsc = fsc_values.copy() if fsc_values is not None else None
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
        pixel_size_angstrom=_optional_length(general, "rlnPixelSize", path),
        particle_diameter_angstrom=_optional_length(general, "rlnParticleDiameter", path),
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
        if not np.all(np.isfinite(array)):
            raise InputFileError(full, "array contains NaN or Inf")
        arrays.append(array)
    real, imag, weight = arrays
    return real + 1j * imag, weight


# ---------------------------------------------------------------------------------------
# Per-iteration files of relion_refine
# ---------------------------------------------------------------------------------------

_NONE_STRINGS = frozenset({"", "None", "none"})


def _list_block(blocks: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    """A RELION "list" (simple key/value) block as a dict; a one-row loop is accepted too."""
    block = require_block(blocks, name, path)
    if isinstance(block, dict):
        return block
    if len(block) != 1:
        raise InputFileError(path, f"data_{name} is not a simple block ({len(block)} rows)")
    return block.iloc[0].to_dict()


def _to_int(value: Any) -> int:
    if isinstance(value, str):
        return int(value.strip())
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"{value!r} is not an integer")
    return int(number)


def _to_bool(value: Any) -> bool:
    number = _to_int(value)
    if number not in (0, 1):
        raise ValueError(f"{value!r} is not 0 or 1")
    return bool(number)


def _to_float(value: Any) -> float:
    return float(value.strip()) if isinstance(value, str) else float(value)


def _to_str(value: Any) -> str:
    return str(value).strip()


_CAST_NAMES = {_to_int: "integer", _to_bool: "0/1 flag", _to_float: "number", _to_str: "string"}


def _label(
    block: dict[str, Any], label: str, cast, path: Path, block_name: str, *, required: bool = True
):
    """``cast(block[label])``; InputFileError for a missing label (if required) or bad value."""
    if label not in block:
        if required:
            raise InputFileError(path, f"missing label _{label} in data_{block_name}")
        return None
    value = block[label]
    try:
        return cast(value)
    except (TypeError, ValueError, OverflowError) as exc:
        what = _CAST_NAMES.get(cast, "value")
        raise InputFileError(
            path, f"label _{label} in data_{block_name} is not a valid {what}: {value!r}"
        ) from exc


def _column(
    table: pd.DataFrame, label: str, dtype, path: Path, block_name: str, *, required: bool = False
) -> np.ndarray | None:
    """A loop column as a new numpy array; InputFileError for non-numeric entries."""
    if label not in table.columns:
        if required:
            raise InputFileError(path, f"missing column _{label} in data_{block_name}")
        return None
    column = table[label]
    try:
        if np.dtype(dtype).kind in "iu":
            as_float = pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64)
            if not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
                raise ValueError("non-integer entries")
            return as_float.astype(dtype)
        return pd.to_numeric(column, errors="raise").to_numpy(dtype=dtype).copy()
    except (TypeError, ValueError) as exc:
        raise InputFileError(
            path, f"column _{label} in data_{block_name} has non-numeric values ({exc})"
        ) from exc


@dataclass(frozen=True)
class SamplingInfo:
    """``<out>_itNNN_sampling.star``, block ``sampling_general`` (``HealpixSampling::write``).

    Attributes
    ----------
    star_path: the file read.
    healpix_order: ``rlnHealpixOrder``, the order *before* adaptive oversampling (coarse
        angular step 60 / 2**order degrees).
    healpix_order_original: ``rlnHealpixOrderOriginal`` (the ``--healpix_order`` of the
        run), or None if absent.
    psi_step_degrees: ``rlnPsiStep``.
    offset_range_angstrom, offset_step_angstrom: ``rlnOffsetRange`` / ``rlnOffsetStep``
        (Angstrom in RELION 3.1+, although the command line takes pixels).
    symmetry_group: ``rlnSymmetryGroup`` (e.g. ``"C1"``).
    is_3d: ``rlnIs3DSampling``.
    version: the ``# version`` comment (30001 for 3.1/4.0, 50001 for 5.0) or None.
    """

    star_path: Path
    healpix_order: int
    healpix_order_original: int | None
    psi_step_degrees: float
    offset_range_angstrom: float
    offset_step_angstrom: float
    symmetry_group: str
    is_3d: bool
    version: int | None = None


def read_sampling_star(path: str | Path) -> SamplingInfo:
    """Read ``<out>_itNNN_sampling.star`` (RELION 3.1, 4.0, 5.0).

    Raises InputFileError naming the file for a missing file, block or label, or a
    malformed value.

    Example
    -------
    >>> info = read_sampling_star("Refine3D/job001/run_it004_sampling.star")  # doctest: +SKIP
    >>> info.healpix_order, info.offset_step_angstrom  # doctest: +SKIP
    (1, 8.0)
    """
    path = Path(path)
    name = "sampling_general"
    general = _list_block(read_star(path), name, path)
    return SamplingInfo(
        star_path=path,
        healpix_order=_label(general, "rlnHealpixOrder", _to_int, path, name),
        healpix_order_original=_label(
            general, "rlnHealpixOrderOriginal", _to_int, path, name, required=False
        ),
        psi_step_degrees=_label(general, "rlnPsiStep", _to_float, path, name),
        offset_range_angstrom=_label(general, "rlnOffsetRange", _to_float, path, name),
        offset_step_angstrom=_label(general, "rlnOffsetStep", _to_float, path, name),
        symmetry_group=_label(general, "rlnSymmetryGroup", _to_str, path, name),
        is_3d=_label(general, "rlnIs3DSampling", _to_bool, path, name),
        version=star_version(path),
    )


@dataclass(frozen=True)
class OptimiserInfo:
    """``<out>_itNNN_optimiser.star``, block ``optimiser_general`` (``MlOptimiser::write``).

    Attributes
    ----------
    star_path: the file read.
    current_iteration: ``rlnCurrentIteration``.
    do_auto_refine: ``rlnDoAutoRefine``.
    do_split_random_halves: ``rlnDoSplitRandomHalves`` (gold-standard halves).
    auto_local_searches_healpix_order: ``rlnAutoLocalSearchesHealpixOrder``
        (``--auto_local_healpix_order``); local searches once the sampling's healpix
        order reaches it.
    has_converged: ``rlnHasConverged``.
    particle_diameter_angstrom: ``rlnParticleDiameter``.
    solvent_mask_name: ``rlnSolventMaskName``; None when RELION wrote ``None`` (no mask).
    do_solvent_fsc_correction: ``rlnDoSolventFscCorrection``, None if absent.
    do_external_reconstruct: ``rlnDoExternalReconstruct``, None if absent.
    best_resolution_angstrom: 1 / ``rlnBestResolutionThusFar`` (the file holds a spatial
        frequency in 1/A); None if absent or not positive. Iteration 0 holds RELION's
        placeholder 1/999 A, i.e. 999 A here.
    command_line: relion_refine's arguments from the file's second comment line
        (``--o Refine3D/job001/run --auto_refine ...``, without the leading ``#``), or
        None if the file has no such line.
    version: the ``# version`` comment (30001 for 3.1/4.0, 50001 for 5.0) or None.
    """

    star_path: Path
    current_iteration: int
    do_auto_refine: bool
    do_split_random_halves: bool
    auto_local_searches_healpix_order: int
    has_converged: bool
    particle_diameter_angstrom: float
    solvent_mask_name: str | None = None
    do_solvent_fsc_correction: bool | None = None
    do_external_reconstruct: bool | None = None
    best_resolution_angstrom: float | None = None
    command_line: str | None = None
    version: int | None = None


def _optimiser_command_line(path: Path) -> str | None:
    """The second of the leading comment lines (``# RELION optimiser; version ...``, ``# --o ...``).

    This reads comments only; the data blocks are parsed by starfile.
    """
    comments: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stripped = line.strip()
            if not stripped:
                continue
            if not stripped.startswith("#") or stripped.startswith("# version"):
                break
            comments.append(stripped)
            if len(comments) == 2:
                break
    if len(comments) < 2:
        return None
    command = comments[1].lstrip("#").strip()
    return command or None


def read_optimiser_star(path: str | Path) -> OptimiserInfo:
    """Read ``<out>_itNNN_optimiser.star`` (RELION 3.1, 4.0, 5.0).

    Raises InputFileError naming the file for a missing file, block or label, or a
    malformed value.

    Example
    -------
    >>> info = read_optimiser_star("Refine3D/job001/run_it004_optimiser.star")  # doctest: +SKIP
    >>> info.auto_local_searches_healpix_order, info.best_resolution_angstrom  # doctest: +SKIP
    (4, 21.333...)
    """
    path = Path(path)
    name = "optimiser_general"
    general = _list_block(read_star(path), name, path)

    mask = _label(general, "rlnSolventMaskName", _to_str, path, name, required=False)
    best = _label(general, "rlnBestResolutionThusFar", _to_float, path, name, required=False)
    return OptimiserInfo(
        star_path=path,
        current_iteration=_label(general, "rlnCurrentIteration", _to_int, path, name),
        do_auto_refine=_label(general, "rlnDoAutoRefine", _to_bool, path, name),
        do_split_random_halves=_label(general, "rlnDoSplitRandomHalves", _to_bool, path, name),
        auto_local_searches_healpix_order=_label(
            general, "rlnAutoLocalSearchesHealpixOrder", _to_int, path, name
        ),
        has_converged=_label(general, "rlnHasConverged", _to_bool, path, name),
        particle_diameter_angstrom=_label(general, "rlnParticleDiameter", _to_float, path, name),
        solvent_mask_name=None if mask is None or mask in _NONE_STRINGS else mask,
        do_solvent_fsc_correction=_label(
            general, "rlnDoSolventFscCorrection", _to_bool, path, name, required=False
        ),
        do_external_reconstruct=_label(
            general, "rlnDoExternalReconstruct", _to_bool, path, name, required=False
        ),
        best_resolution_angstrom=1.0 / best if best is not None and best > 0 else None,
        command_line=_optimiser_command_line(path),
        version=star_version(path),
    )


@dataclass(frozen=True)
class ModelInfo:
    """``<out>_itNNN_half1_model.star`` (or ``_model.star``): ``model_general`` and the first
    class table ``model_class_1`` (``MlModel::write``).

    Attributes
    ----------
    star_path: the file read.
    current_resolution_angstrom: ``rlnCurrentResolution``; the value is in Angstrom although
        the label's documentation says 1/A (``inf`` at iteration 0).
    current_image_size: ``rlnCurrentImageSize`` (0 at iteration 0).
    pixel_size_angstrom: ``rlnPixelSize``.
    padding_factor: ``rlnPaddingFactor``.
    original_image_size: ``rlnOriginalImageSize`` (box N).
    orientational_prior_mode: ``rlnOrientationalPriorMode`` (0 global, 1 local searches).
    nr_classes: ``rlnNrClasses``.
    spectral_index: (n_shells,) int64 ``rlnSpectralIndex`` of ``model_class_1``.
    resolution_per_angstrom: (n_shells,) float64 ``rlnResolution`` (1/A).
    gold_standard_fsc: (n_shells,) float64 ``rlnGoldStandardFsc``.
    ssnr: (n_shells,) float64 ``rlnSsnrMap``.
    reference_tau2: (n_shells,) float64 ``rlnReferenceTau2``.
    reference_sigma2: (n_shells,) float64 ``rlnReferenceSigma2``.
    version: the ``# version`` comment (30001 for 3.1/4.0, 50001 for 5.0) or None.

    Each array is None when its column is absent; n_shells = N//2 + 1 in RELION's files.
    """

    star_path: Path
    current_resolution_angstrom: float
    current_image_size: int
    pixel_size_angstrom: float
    padding_factor: float
    original_image_size: int
    orientational_prior_mode: int
    nr_classes: int
    spectral_index: np.ndarray | None = None
    resolution_per_angstrom: np.ndarray | None = None
    gold_standard_fsc: np.ndarray | None = None
    ssnr: np.ndarray | None = None
    reference_tau2: np.ndarray | None = None
    reference_sigma2: np.ndarray | None = None
    version: int | None = None


def read_model_star(path: str | Path) -> ModelInfo:
    """Read ``<out>_itNNN_half1_model.star`` / ``<out>_model.star`` (RELION 3.1, 4.0, 5.0).

    Raises InputFileError naming the file for a missing file, block (``model_general``,
    ``model_class_1``) or label, or a malformed value.

    Example
    -------
    >>> model = read_model_star("Refine3D/job001/run_it004_half1_model.star")  # doctest: +SKIP
    >>> model.current_resolution_angstrom, model.reference_tau2.shape  # doctest: +SKIP
    (21.333333, (17,))
    """
    path = Path(path)
    blocks = read_star(path)
    name = "model_general"
    general = _list_block(blocks, name, path)
    table_name = "model_class_1"
    table = require_block(blocks, table_name, path)
    if isinstance(table, dict):  # a single shell written as a simple block
        table = pd.DataFrame([table])

    def col(label: str, dtype=np.float64) -> np.ndarray | None:
        return _column(table, label, dtype, path, table_name)

    return ModelInfo(
        star_path=path,
        current_resolution_angstrom=_label(general, "rlnCurrentResolution", _to_float, path, name),
        current_image_size=_label(general, "rlnCurrentImageSize", _to_int, path, name),
        pixel_size_angstrom=_label(general, "rlnPixelSize", _to_float, path, name),
        padding_factor=_label(general, "rlnPaddingFactor", _to_float, path, name),
        original_image_size=_label(general, "rlnOriginalImageSize", _to_int, path, name),
        orientational_prior_mode=_label(general, "rlnOrientationalPriorMode", _to_int, path, name),
        nr_classes=_label(general, "rlnNrClasses", _to_int, path, name),
        spectral_index=col("rlnSpectralIndex", np.int64),
        resolution_per_angstrom=col("rlnResolution"),
        gold_standard_fsc=col("rlnGoldStandardFsc"),
        ssnr=col("rlnSsnrMap"),
        reference_tau2=col("rlnReferenceTau2"),
        reference_sigma2=col("rlnReferenceSigma2"),
        version=star_version(path),
    )


@dataclass(frozen=True)
class ParticlesTable:
    """A RELION 3.1+ particles STAR (e.g. ``<out>_itNNN_data.star``): ``optics`` + ``particles``.

    Attributes
    ----------
    star_path: the file read.
    optics: the ``data_optics`` table (a copy; one row per optics group).
    particles: the ``data_particles`` table (a copy; one row per particle).
    pixel_size_angstrom: (n_particles,) float64, the pixel size of each particle's optics
        group (``rlnImagePixelSize``, else ``rlnPixelSize`` of the optics table).
    image_size: (n_particles,) int64, ``rlnImageSize`` of each particle's optics group.
    version: the ``# version`` comment (30001 for 3.1/4.0, 50001 for 5.0) or None.
    """

    star_path: Path
    optics: pd.DataFrame
    particles: pd.DataFrame
    pixel_size_angstrom: np.ndarray
    image_size: np.ndarray
    version: int | None = None

    @property
    def n_particles(self) -> int:
        return len(self.particles)

    @property
    def common_pixel_size_angstrom(self) -> float | None:
        """The pixel size if all particles share one, else None."""
        unique = np.unique(self.pixel_size_angstrom)
        return float(unique[0]) if unique.size == 1 else None


def read_particles_star(path: str | Path) -> ParticlesTable:
    """Read a RELION 3.1+ particles STAR with ``data_optics`` and ``data_particles`` blocks.

    A file without an optics block (RELION 3.0 and earlier) is rejected: convert it with
    ``relion_convert_star`` first.

    Raises InputFileError naming the file for a missing file, block or label, an optics
    group used by a particle but absent from the optics table, or a malformed value.

    Example
    -------
    >>> table = read_particles_star("Refine3D/job001/run_it004_data.star")  # doctest: +SKIP
    >>> table.common_pixel_size_angstrom, int(table.image_size[0])  # doctest: +SKIP
    (4.0, 32)
    """
    path = Path(path)
    blocks = read_star(path)
    if "optics" not in blocks:
        found = ", ".join(f"data_{b}" for b in blocks) or "none"
        raise InputFileError(
            path,
            "no data_optics block: RELION 3.1+ format is required "
            f"(found: {found}; convert older files with relion_convert_star)",
        )
    optics = require_block(blocks, "optics", path)
    particles = require_block(blocks, "particles", path)
    if isinstance(optics, dict):
        optics = pd.DataFrame([optics])
    if isinstance(particles, dict):
        particles = pd.DataFrame([particles])
    optics = optics.copy()
    particles = particles.copy()

    group_ids = _column(optics, "rlnOpticsGroup", np.int64, path, "optics", required=True)
    if "rlnImagePixelSize" in optics.columns:
        pixel_label = "rlnImagePixelSize"
    elif "rlnPixelSize" in optics.columns:
        pixel_label = "rlnPixelSize"
    else:
        raise InputFileError(
            path, "missing column _rlnImagePixelSize (or _rlnPixelSize) in data_optics"
        )
    group_pixel = _column(optics, pixel_label, np.float64, path, "optics", required=True)
    group_size = _column(optics, "rlnImageSize", np.int64, path, "optics", required=True)
    if len(np.unique(group_ids)) != len(group_ids):
        raise InputFileError(path, "duplicate _rlnOpticsGroup numbers in data_optics")

    if "rlnOpticsGroup" in particles.columns:
        particle_groups = _column(
            particles, "rlnOpticsGroup", np.int64, path, "particles", required=True
        )
    elif len(group_ids) == 1:
        particle_groups = np.full(len(particles), group_ids[0], dtype=np.int64)
    else:
        raise InputFileError(
            path, "missing column _rlnOpticsGroup in data_particles (several optics groups)"
        )
    lookup = {int(g): i for i, g in enumerate(group_ids)}
    unknown = sorted({int(g) for g in particle_groups} - lookup.keys())
    if unknown:
        raise InputFileError(
            path, f"particles refer to optics groups {unknown} that data_optics does not define"
        )
    rows = np.array([lookup[int(g)] for g in particle_groups], dtype=np.int64)
    return ParticlesTable(
        star_path=path,
        optics=optics,
        particles=particles,
        pixel_size_angstrom=group_pixel[rows],
        image_size=group_size[rows],
        version=star_version(path),
    )


@dataclass(frozen=True)
class IterationFiles:
    """Paths of the per-iteration STAR files of ``relion_refine --o <output_root>``.

    Paths may not exist (e.g. the files of iteration N are written only after its
    maximisation); ``exists()`` checks them when called.

    Attributes
    ----------
    output_root: the ``--o`` root (e.g. ``Refine3D/job001/run``).
    iteration: the iteration number.
    sampling_star: ``<root>_itNNN_sampling.star``.
    optimiser_star: ``<root>_itNNN_optimiser.star``.
    data_star: ``<root>_itNNN_data.star``.
    half1_model_star, half2_model_star: ``<root>_itNNN_half{1,2}_model.star`` (split halves).
    model_star: ``<root>_itNNN_model.star`` (runs without split halves).
    """

    output_root: Path
    iteration: int
    sampling_star: Path
    optimiser_star: Path
    data_star: Path
    half1_model_star: Path
    half2_model_star: Path
    model_star: Path

    def exists(self) -> dict[str, bool]:
        """For each path attribute, whether it is an existing file now."""
        names = (
            "sampling_star",
            "optimiser_star",
            "data_star",
            "half1_model_star",
            "half2_model_star",
            "model_star",
        )
        return {name: getattr(self, name).is_file() for name in names}

    @property
    def existing_model_star(self) -> Path | None:
        """``half1_model_star`` if it exists, else ``model_star`` if it exists, else None."""
        for candidate in (self.half1_model_star, self.model_star):
            if candidate.is_file():
                return candidate
        return None


def find_iteration_files(output_root: str | Path, iteration: int) -> IterationFiles:
    """The per-iteration file names relion_refine uses (``%03d`` iteration); never raises
    for files that do not exist.

    Example
    -------
    >>> files = find_iteration_files("Refine3D/job001/run", 4)
    >>> files.sampling_star.name
    'run_it004_sampling.star'
    """
    iteration = int(iteration)
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, not {iteration}")
    root = str(output_root)
    stem = f"{root}_it{iteration:03d}"
    return IterationFiles(
        output_root=Path(root),
        iteration=iteration,
        sampling_star=Path(f"{stem}_sampling.star"),
        optimiser_star=Path(f"{stem}_optimiser.star"),
        data_star=Path(f"{stem}_data.star"),
        half1_model_star=Path(f"{stem}_half1_model.star"),
        half2_model_star=Path(f"{stem}_half2_model.star"),
        model_star=Path(f"{stem}_model.star"),
    )
