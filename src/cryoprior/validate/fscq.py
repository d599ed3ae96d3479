"""FSC-Q: how much of an atomic model the map's signal supports.

FSC-Q (Ramirez-Aportela et al., Nat. Commun. 12:42, 2021) as Xmipp's ``validate fsc-q``
protocol computes it:

* local resolution of the full map against a map computed from the model (local FSC in sliding
  windows, threshold 0.67), minus
* local resolution of the two half-maps (same windows, threshold 0.5),

read at each atom. Values near 0 mean the model agrees with the map as far as the map's signal
goes; positive values mean the model departs from the map where the half-maps still agree
(model errors); negative values mean the model agrees with the map beyond what the half-maps
support (e.g. overfitting or model bias). The normalised variant FSC-Qr divides by the local
resolution of the half-maps. The thresholds are Xmipp's (``blocres -cutoff 0.67`` for map
against model, ``-cutoff 0.5`` for the half-maps; 0.67 = 2 * 0.5 / (1 + 0.5), the full-map FSC
that corresponds to a half-map FSC of 0.5); the window is 20 voxels as in Xmipp.

Deviations from Xmipp (which runs Bsoft's ``blocres -box 20 -step 1 -pad 1 -smooth``): the
windows are evaluated on a lattice every ``step_voxels`` and interpolated trilinearly rather
than at every voxel, are not zero-padded before the transform (the crossing is interpolated
between shells instead), and the value at an atom is the interpolated value at its centre
rather than the mean over a 0.8 A sphere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.ndimage

from cryoprior.validate.local_resolution import (
    default_step_voxels,
    local_fsc_lattice,
    resolution_from_curves,
    sample_lattice,
)

__all__ = ["FscQResult", "fsc_q", "model_mask"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FscQResult:
    """FSC-Q per atom and its summaries.

    Attributes
    ----------
    per_atom_angstrom: (n_atoms,) FSC-Q at each atom, Angstrom.
    per_atom_normalised: (n_atoms,) FSC-Qr = FSC-Q / local half-map resolution.
    local_resolution_map_model_angstrom: (n_atoms,) local resolution of map vs model there.
    local_resolution_half_maps_angstrom: (n_atoms,) local resolution of the half-maps there.
    mean_angstrom: mean FSC-Q over atoms.
    mean_absolute_angstrom: mean |FSC-Q|.
    mean_normalised: mean FSC-Qr.
    fraction_normalised_above_half: fraction of atoms with FSC-Qr > 0.5 (poorly supported).
    fraction_normalised_below_minus_half: fraction with FSC-Qr < -0.5 (possible overfitting).
    """

    per_atom_angstrom: np.ndarray
    per_atom_normalised: np.ndarray
    local_resolution_map_model_angstrom: np.ndarray
    local_resolution_half_maps_angstrom: np.ndarray
    mean_angstrom: float
    mean_absolute_angstrom: float
    mean_normalised: float
    fraction_normalised_above_half: float
    fraction_normalised_below_minus_half: float

    def to_dict(self, *, per_atom: bool = True) -> dict:
        """Summary as a JSON-ready dict; the per-atom values (Angstrom and normalised) if asked."""
        out = {
            "mean_angstrom": self.mean_angstrom,
            "mean_absolute_angstrom": self.mean_absolute_angstrom,
            "mean_normalised": self.mean_normalised,
            "fraction_normalised_above_half": self.fraction_normalised_above_half,
            "fraction_normalised_below_minus_half": self.fraction_normalised_below_minus_half,
            "n_atoms": int(self.per_atom_angstrom.size),
        }
        if per_atom:
            out["per_atom_angstrom"] = self.per_atom_angstrom.tolist()
            out["per_atom_normalised"] = self.per_atom_normalised.tolist()
        return out


def model_mask(model_map, *, relative_threshold: float = 0.02, dilation_voxels: int = 3):
    """Mask of the model: voxels above ``relative_threshold`` of the model map's maximum.

    The mask is dilated by ``dilation_voxels`` (Xmipp thresholds its model map at 0.02 and
    dilates by 3).

    Returns
    -------
    bool array, real space, the model map's shape.
    """
    m = np.asarray(model_map, dtype=np.float64)
    seed = m > relative_threshold * m.max()
    if dilation_voxels > 0:
        ball = scipy.ndimage.generate_binary_structure(3, 1)
        seed = scipy.ndimage.binary_dilation(seed, structure=ball, iterations=dilation_voxels)
    return seed


def fsc_q(
    half_map_1,
    half_map_2,
    model_map,
    atom_positions_angstrom,
    *,
    full_map=None,
    mask=None,
    voxel_size_angstrom: float,
    origin_angstrom=(0.0, 0.0, 0.0),
    window_size_voxels: int = 20,
    step_voxels: int | None = None,
    threshold_map_model: float = 0.67,
    threshold_half_maps: float = 0.5,
) -> FscQResult:
    """FSC-Q of an atomic model (see the module docstring).

    Parameters
    ----------
    half_map_1, half_map_2: real arrays, real space, shape (n, n, n).
    model_map: real array, real space, shape (n, n, n): a map computed from the model on the
        same grid.
    atom_positions_angstrom: (n_atoms, 3) atom positions (x, y, z), Angstrom.
    full_map: the map the model was built into; default the mean of the half-maps.
    mask: optional real array, real space, shape (n, n, n): where local resolutions are
        estimated (> 0.5); default :func:`model_mask` of the model map.
    voxel_size_angstrom: voxel size.
    origin_angstrom: (x, y, z) position of voxel (0, 0, 0).
    window_size_voxels: local-FSC window (Xmipp: 20).
    step_voxels: lattice step (default window // 5).
    threshold_map_model, threshold_half_maps: local FSC thresholds (Xmipp: 0.67, 0.5).

    Returns
    -------
    :class:`FscQResult`. Inputs are not modified.
    """
    h1 = np.asarray(half_map_1, dtype=np.float64)
    h2 = np.asarray(half_map_2, dtype=np.float64)
    model = np.asarray(model_map, dtype=np.float64)
    if not (h1.shape == h2.shape == model.shape) or h1.ndim != 3:
        raise ValueError(
            f"half-maps and model map must share one (n, n, n) shape: {h1.shape}, {h2.shape}, "
            f"{model.shape}"
        )
    full = 0.5 * (h1 + h2) if full_map is None else np.asarray(full_map, dtype=np.float64)
    region = model_mask(model) if mask is None else np.asarray(mask, dtype=np.float64) > 0.5
    xyz = np.asarray(atom_positions_angstrom, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"atom_positions_angstrom must be (n_atoms, 3), not {xyz.shape}")
    n = h1.shape[0]
    step = default_step_voxels(window_size_voxels) if step_voxels is None else int(step_voxels)
    voxel = float(voxel_size_angstrom)
    points = ((xyz - np.asarray(origin_angstrom, dtype=np.float64)) / voxel)[:, ::-1]

    def local_at_atoms(a: np.ndarray, b: np.ndarray, threshold: float) -> np.ndarray:
        centres, curves = local_fsc_lattice(
            a, b, mask=region, window_size_voxels=window_size_voxels, step_voxels=step
        )
        values = resolution_from_curves(
            curves,
            threshold=threshold,
            window_size_voxels=window_size_voxels,
            voxel_size_angstrom=voxel,
        )
        return sample_lattice(centres, values, points, box_size=n, step_voxels=step)

    res_model = local_at_atoms(full, model, threshold_map_model)
    res_half = local_at_atoms(h1, h2, threshold_half_maps)
    per_atom = res_model - res_half
    normalised = per_atom / res_half
    return FscQResult(
        per_atom_angstrom=per_atom,
        per_atom_normalised=normalised,
        local_resolution_map_model_angstrom=res_model,
        local_resolution_half_maps_angstrom=res_half,
        mean_angstrom=float(per_atom.mean()) if per_atom.size else float("nan"),
        mean_absolute_angstrom=float(np.abs(per_atom).mean()) if per_atom.size else float("nan"),
        mean_normalised=float(normalised.mean()) if normalised.size else float("nan"),
        fraction_normalised_above_half=float((normalised > 0.5).mean()) if per_atom.size else 0.0,
        fraction_normalised_below_minus_half=(
            float((normalised < -0.5).mean()) if per_atom.size else 0.0
        ),
    )
