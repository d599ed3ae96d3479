"""Particle poses: the one type for a set of orientations and origins, and its table reader.

Angles are RELION's ZYZ Euler angles in degrees (``rlnAngleRot``, ``rlnAngleTilt``,
``rlnAnglePsi``; see :mod:`cryoprior.conventions`): ``A = euler_to_matrix(rot, tilt, psi)``
rotates the map into the image frame, and the viewing direction of a pose is the third row of
A, ``(cos rot sin tilt, sin rot sin tilt, cos tilt)``. Origins are ``rlnOriginXAngst`` /
``rlnOriginYAngst`` in Angstrom: RELION draws the particle shifted by ``-origin`` (see
:meth:`Poses.shifts_pixels`). Image names (``rlnImageName``) are the key that matches the
particles of two tables (a refinement's and a simulation's ground truth).

The simulation draws poses (:mod:`cryoprior.simulate.poses`), validation compares them
(:mod:`cryoprior.validate.poses`); reading them from a STAR file is
:func:`cryoprior.io.relion.poses_from_star`, which hands the table to
:func:`poses_from_particles`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from cryoprior.conventions import euler_to_matrix
from cryoprior.errors import InputFileError

__all__ = ["Poses", "concatenate_poses", "poses_from_particles"]

_ANGLE_LABELS = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")


@dataclass(frozen=True, eq=False)
class Poses:
    """Orientations, origins and (optionally) image names of n particles.

    Every array is read-only with shape (n,); the constructor copies and checks its inputs.

    Attributes
    ----------
    rot_degrees, tilt_degrees, psi_degrees: float64 RELION Euler angles.
    origin_x_angstrom, origin_y_angstrom: float64 ``rlnOriginXAngst`` / ``rlnOriginYAngst``
        (zeros when not given).
    image_names: object array of str, ``rlnImageName`` of each particle, or None when the
        poses have no names (as drawn by the simulation before its images are written).

    Example
    -------
    >>> poses = Poses([0.0, 90.0], [0.0, 90.0], [0.0, 0.0], image_names=["1@a.mrcs", "2@a.mrcs"])
    >>> len(poses), poses.origin_x_angstrom.tolist(), poses.matrices().shape
    (2, [0.0, 0.0], (2, 3, 3))
    """

    rot_degrees: np.ndarray
    tilt_degrees: np.ndarray
    psi_degrees: np.ndarray
    origin_x_angstrom: np.ndarray | None = None
    origin_y_angstrom: np.ndarray | None = None
    image_names: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Store the fields as read-only (n,) arrays (origins None: zeros); check them."""
        n = np.size(self.rot_degrees)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "image_names":
                if value is None:
                    continue
                array = np.array([str(v) for v in np.asarray(value).reshape(-1)], dtype=object)
            else:
                array = np.zeros(n) if value is None else np.array(value, dtype=np.float64)
                array = array.reshape(-1)
                if not np.isfinite(array).all():
                    raise ValueError(f"{f.name} has non-finite values")
            if array.shape != (n,):
                raise ValueError(f"{f.name} has {array.size} values, expected {n}")
            array.setflags(write=False)
            object.__setattr__(self, f.name, array)

    def __len__(self) -> int:
        """Return the number of poses."""
        return int(self.rot_degrees.size)

    def matrices(self) -> np.ndarray:
        """RELION rotation matrices ``euler_to_matrix(rot, tilt, psi)``, (n, 3, 3) float64."""
        return euler_to_matrix(self.rot_degrees, self.tilt_degrees, self.psi_degrees)

    def shifts_pixels(self, voxel_size_angstrom: float) -> np.ndarray:
        """Image shifts (dy, dx) in pixels that RELION applies: ``-(origin_y, origin_x) / pixel``.

        Returns (n, 2) float64.
        """
        origins = np.stack(
            [np.asarray(self.origin_y_angstrom), np.asarray(self.origin_x_angstrom)], axis=1
        )
        return -origins / float(voxel_size_angstrom)

    def take(self, indices) -> Poses:
        """Return the poses at ``indices`` (any numpy index: integers, a mask, a slice)."""

        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[indices]

        return Poses(
            self.rot_degrees[indices],
            self.tilt_degrees[indices],
            self.psi_degrees[indices],
            pick(self.origin_x_angstrom),
            pick(self.origin_y_angstrom),
            image_names=pick(self.image_names),
        )

    def to_dataframe(self) -> pd.DataFrame:
        """Return the poses as a RELION table.

        Columns rlnImageName (when the poses have names), rlnAngleRot, rlnAngleTilt,
        rlnAnglePsi, rlnOriginXAngst, rlnOriginYAngst.
        """
        names = {} if self.image_names is None else {"rlnImageName": self.image_names}
        return pd.DataFrame(
            {
                **names,
                "rlnAngleRot": self.rot_degrees,
                "rlnAngleTilt": self.tilt_degrees,
                "rlnAnglePsi": self.psi_degrees,
                "rlnOriginXAngst": self.origin_x_angstrom,
                "rlnOriginYAngst": self.origin_y_angstrom,
            }
        )


def concatenate_poses(poses_list: Iterable[Poses]) -> Poses:
    """Poses of several sets one after the other.

    The result has image names only when every set has them.
    """
    poses_list = list(poses_list)

    def joined(name: str) -> np.ndarray | None:
        parts = [getattr(p, name) for p in poses_list]
        return None if any(part is None for part in parts) else np.concatenate(parts)

    return Poses(
        np.concatenate([p.rot_degrees for p in poses_list]),
        np.concatenate([p.tilt_degrees for p in poses_list]),
        np.concatenate([p.psi_degrees for p in poses_list]),
        joined("origin_x_angstrom"),
        joined("origin_y_angstrom"),
        image_names=joined("image_names"),
    )


def poses_from_particles(
    particles: pd.DataFrame,
    *,
    pixel_size_angstrom=None,
    source: str | Path | None = None,
) -> Poses:
    """Build :class:`Poses` from a RELION particles table (a ``data_particles`` loop).

    Needs ``rlnAngleRot``, ``rlnAngleTilt``, ``rlnAnglePsi``; ``rlnImageName`` gives the
    names when present. Origins come from ``rlnOriginXAngst`` / ``rlnOriginYAngst``; without
    those, from the pixel columns ``rlnOriginX`` / ``rlnOriginY`` (RELION 3.0, and what
    ``relion_project`` writes) times ``pixel_size_angstrom``; else zero. The table is not
    modified.

    Parameters
    ----------
    particles: the particles table (e.g. ``read_particles_star(path).particles``).
    pixel_size_angstrom: scalar or (n,) pixel size, needed only for a table whose origins are
        in pixels (``ParticlesTable.pixel_size_angstrom`` gives it per particle).
    source: the file the table was read from, named in errors.

    Raises
    ------
    InputFileError (a ValueError) naming ``source``, or ValueError without a source: a missing
    angle column, a non-numeric or non-finite value, or origins in pixels without a pixel size.

    Example
    -------
    >>> table = pd.DataFrame({"rlnAngleRot": [10.0], "rlnAngleTilt": [20.0],
    ...                       "rlnAnglePsi": [30.0], "rlnOriginX": [1.5]})
    >>> poses_from_particles(table, pixel_size_angstrom=2.0).origin_x_angstrom.tolist()
    [3.0]
    """

    def problem(message: str) -> ValueError:
        return ValueError(message) if source is None else InputFileError(source, message)

    missing = [c for c in _ANGLE_LABELS if c not in particles.columns]
    if missing:
        raise problem(f"missing column(s) {', '.join('_' + m for m in missing)}")

    def column(name: str) -> np.ndarray | None:
        if name not in particles.columns:
            return None
        try:
            return particles[name].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise problem(f"column _{name} is not numeric") from exc

    origins = []
    for axis in ("X", "Y"):
        value = column(f"rlnOrigin{axis}Angst")
        pixels = column(f"rlnOrigin{axis}")
        if value is None and pixels is not None and np.any(pixels != 0):
            if pixel_size_angstrom is None:
                raise problem(
                    f"origins are in pixels (_rlnOrigin{axis}, RELION 3.0) and no pixel size "
                    f"is known: convert them to _rlnOrigin{axis}Angst"
                )
            value = pixels * np.asarray(pixel_size_angstrom, dtype=np.float64)
        origins.append(value)
    names = particles["rlnImageName"] if "rlnImageName" in particles.columns else None
    try:
        rot, tilt, psi = (np.asarray(column(label)) for label in _ANGLE_LABELS)
        return Poses(
            rot,
            tilt,
            psi,
            origin_x_angstrom=origins[0],
            origin_y_angstrom=origins[1],
            image_names=None if names is None else names.astype(str).to_numpy(dtype=object),
        )
    except ValueError as exc:
        raise problem(str(exc)) from exc
