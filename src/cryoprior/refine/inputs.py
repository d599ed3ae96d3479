"""What ``cryoprior refine`` checks before RELION starts: particles, reference, mask, symmetry.

Everything RELION would otherwise fail on minutes later (or with its message buried under Open
MPI's), and everything cryoprior takes from the data instead of asking: the pixel size and box
from the optics table, whether the images carry CTF parameters, a default particle diameter.
Each check raises :class:`~cryoprior.errors.InputFileError` (one line naming the file and the
problem) or :class:`RefineInputError` (one line, for a problem between files or options).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoprior.errors import InputFileError
from cryoprior.io.mrc import MapHeader, read_map_header
from cryoprior.io.relion import ParticlesTable

__all__ = [
    "CTF_COLUMNS",
    "ParticleData",
    "RefineInputError",
    "check_image_files",
    "check_map_against_particles",
    "default_particle_diameter_angstrom",
    "particle_data",
    "rescaled_reference",
]

logger = logging.getLogger(__name__)

# a particle STAR with these columns holds CTF parameters (RELION writes all of them after CTF
# estimation; defocus is what --ctf needs)
CTF_COLUMNS = ("rlnDefocusU", "rlnDefocusV")

# relative tolerance on pixel sizes read from different files (headers store float32)
PIXEL_RTOL = 1e-3


class RefineInputError(ValueError):
    """Inputs that are each readable but do not fit together (one line: what and how)."""


@dataclass(frozen=True)
class ParticleData:
    """What a particles STAR says about its images.

    Attributes
    ----------
    star_path: the file.
    n_particles: rows of ``data_particles``.
    pixel_size_angstrom: the one pixel size of the optics groups the particles use.
    box_size: the one ``rlnImageSize`` of those groups.
    has_ctf: ``rlnDefocusU`` and ``rlnDefocusV`` are columns of ``data_particles``.
    optics_groups: number of optics groups the particles use.
    version: the STAR's ``# version`` (30001: RELION 3.1/4.0, 50001: 5.0) or None.
    """

    star_path: Path
    n_particles: int
    pixel_size_angstrom: float
    box_size: int
    has_ctf: bool
    optics_groups: int
    version: int | None


def particle_data(table: ParticlesTable) -> ParticleData:
    """One pixel size, one box and whether there is CTF, from a read particles STAR.

    Raises InputFileError naming the file when it has no particles or no ``_rlnImageName``,
    or when the optics groups its particles use disagree on the pixel size or the box (RELION
    would refine them together against one reference; cryoprior refine does not support that:
    re-extract to one pixel size and box, or split the STAR by optics group).
    """
    path = table.star_path
    if table.n_particles == 0:
        raise InputFileError(path, "data_particles has no rows")
    if "rlnImageName" not in table.particles.columns:
        raise InputFileError(path, "missing column _rlnImageName in data_particles")
    pixels = np.unique(table.pixel_size_angstrom)
    boxes = np.unique(table.image_size)
    if "rlnOpticsGroup" in table.particles.columns:
        group_of = table.particles["rlnOpticsGroup"].astype(int).to_numpy()
    else:
        group_of = np.ones(table.n_particles, dtype=int)
    groups = sorted(set(group_of.tolist()))

    def per_group(values: np.ndarray, unit: str) -> str:
        first = {g: values[np.argmax(group_of == g)] for g in groups}
        return ", ".join(f"group {g}: {first[g]:g} {unit}" for g in groups)

    if pixels.size > 1 and not np.allclose(pixels, pixels[0], rtol=PIXEL_RTOL, atol=0):
        raise InputFileError(
            path,
            "the optics groups disagree on the pixel size "
            f"({per_group(table.pixel_size_angstrom, 'A')}): cryoprior refine needs one; "
            "re-extract to one pixel size or split the STAR by optics group",
        )
    if boxes.size > 1:
        raise InputFileError(
            path,
            f"the optics groups disagree on the box size ({per_group(table.image_size, 'px')}): "
            "cryoprior refine needs one; re-extract to one box or split the STAR by optics group",
        )
    pixel = float(pixels[0])
    if not (math.isfinite(pixel) and pixel > 0):
        raise InputFileError(path, f"pixel size {pixel:g} A in data_optics is not positive")
    box = int(boxes[0])
    if box < 2:
        raise InputFileError(path, f"box size {box} px in data_optics is too small")
    columns = set(table.particles.columns)
    return ParticleData(
        star_path=path,
        n_particles=table.n_particles,
        pixel_size_angstrom=pixel,
        box_size=box,
        has_ctf=all(c in columns for c in CTF_COLUMNS),
        optics_groups=len(groups),
        version=table.version,
    )


def _split_image_name(name: str) -> tuple[int, str]:
    """``"000012@Particles/a.mrcs"`` -> (12, "Particles/a.mrcs"); a bare path -> (1, path)."""
    text = str(name).strip()
    if "@" in text:
        index, stack = text.split("@", 1)
        try:
            return int(index), stack
        except ValueError:
            return -1, stack
    return 1, text


def check_image_files(table: ParticlesTable, workdir: str | Path, *, max_stacks: int = 50) -> int:
    """Check that a sample of the particle images exists, as RELION will resolve them.

    RELION reads ``rlnImageName`` (``N@stack.mrcs``) relative to the folder it runs in
    (``workdir``, the project folder). Up to ``max_stacks`` distinct stacks, spread evenly
    over the table (always the first and the last), are checked: the file exists, is an MRC
    file, and holds at least the highest image number the table asks of it.

    Returns the number of stacks checked. Raises InputFileError naming the STAR and the first
    missing or short stack.
    """
    star = table.star_path
    names = table.particles["rlnImageName"].astype(str).tolist()
    wanted: dict[str, int] = {}
    for name in names:
        index, stack = _split_image_name(name)
        if index < 1:
            raise InputFileError(star, f"_rlnImageName {name!r} is not N@stack")
        wanted[stack] = max(wanted.get(stack, 0), index)
    stacks = list(wanted)
    if len(stacks) > max_stacks:
        picks = np.unique(np.linspace(0, len(stacks) - 1, max_stacks).round().astype(int))
        stacks = [stacks[i] for i in picks]
    root = Path(workdir)
    for stack in stacks:
        path = root / stack
        if not path.is_file():
            raise InputFileError(
                star,
                f"image stack {stack} does not exist (looked in {root.resolve()}; image paths "
                "are relative to the RELION project folder: run cryoprior refine there)",
            )
        try:
            n_images = read_map_header(path).shape[0]
        except InputFileError as exc:
            raise InputFileError(star, f"image stack {stack}: {exc.problem}") from None
        if wanted[stack] > n_images:
            raise InputFileError(
                star, f"image {wanted[stack]} of {stack} is asked for, but it holds {n_images}"
            )
    return len(stacks)


def check_map_against_particles(
    header: MapHeader, particles: ParticleData, *, what: str = "reference"
) -> str | None:
    """Compare a map's box and voxel size with the particles'.

    Returns None when they agree, else the one-line problem (naming both files), for the caller
    to raise or to resample on. A map must be a cube; a header without a voxel size (0) is taken
    to have the particles' pixel size, as RELION does, and only its box is compared.
    """
    nz, ny, nx = header.shape
    if not nz == ny == nx:
        raise InputFileError(header.path, f"{what} map is not a cube ({nx} x {ny} x {nz})")
    box = particles.box_size
    pixel = particles.pixel_size_angstrom
    voxel = header.voxel_size_angstrom
    same_voxel = voxel <= 0 or math.isclose(voxel, pixel, rel_tol=PIXEL_RTOL)
    if nx == box and same_voxel:
        return None
    mine = f"{nx} px at {voxel:g} A" if voxel > 0 else f"{nx} px"
    return (
        f"{header.path}: {what} map is {mine}, the particles of {particles.star_path} are "
        f"{box} px at {pixel:g} A"
    )


def rescaled_reference(
    volume: np.ndarray, *, voxel_size_angstrom: float, box_size: int, pixel_size_angstrom: float
) -> tuple[np.ndarray, float]:
    """Resample a map to the particles' pixel size and cut or pad it to their box.

    Fourier cropping or padding to ``m = round(n * voxel / pixel)`` voxels (so the pixel size
    reached is ``n * voxel / m``, within half a voxel over the box of the wanted one), then a
    centred cut or zero pad to ``box_size`` (voxel ``m//2`` stays the centre).

    Parameters
    ----------
    volume: (n, n, n) real map.
    voxel_size_angstrom: its voxel size.
    box_size: the particles' box.
    pixel_size_angstrom: the particles' pixel size.

    Returns
    -------
    ((box_size,)*3 float32 map, the voxel size reached in Angstrom).
    """
    from cryoprior.fourier.resample import fourier_crop, fourier_pad, resampled_size

    n = volume.shape[-1]
    m, reached = resampled_size(
        n, voxel_size_angstrom=voxel_size_angstrom, new_voxel_size_angstrom=pixel_size_angstrom
    )
    vol = np.asarray(volume, dtype=np.float64)
    if m < n:
        vol = fourier_crop(vol, new_size=m)
    elif m > n:
        vol = fourier_pad(vol, new_size=m)
    out = np.zeros((box_size,) * 3, dtype=np.float64)
    # centred copy: voxel m//2 of vol goes to box_size//2 of out
    lo_src = max(0, m // 2 - box_size // 2)
    lo_dst = max(0, box_size // 2 - m // 2)
    size = min(m - lo_src, box_size - lo_dst)
    sl_src = slice(lo_src, lo_src + size)
    sl_dst = slice(lo_dst, lo_dst + size)
    out[sl_dst, sl_dst, sl_dst] = vol[sl_src, sl_src, sl_src]
    return out.astype(np.float32), reached


def default_particle_diameter_angstrom(box_size: int, pixel_size_angstrom: float) -> float:
    """Return the particle diameter used when none is given: 80 % of the box's width.

    Rounded down to 1 A. RELION's GUI has no default; the box is usually cut at 1.5-2x the
    particle, so this errs on the large side and masks no density away.
    """
    return float(math.floor(0.8 * box_size * pixel_size_angstrom))
