"""Point-group rotation matrices in RELION's standard orientations.

The groups are generated from the rotation axes RELION 3.1 (``symmetries.cpp``, inherited from
Xmipp) uses: Cn about z; Dn adds a two-fold about x; T, O and the icosahedral settings I1-I4
(``I`` = ``I2``) as below. Matrices act on (x, y, z) column vectors, like
:func:`cryoprior.conventions.euler_to_matrix`; each group is closed under multiplication and
transposition, so the order of the matrices is not significant. Checked against
``relion_refine --sym G --print_symmetry_ops`` (RELION 3.1.3) in
``tests/test_validate_poses.py``.

Only proper rotations are supported (C, D, T, O, I): groups with mirrors or inversion (Ci, Cs,
Cnv, Cnh, Sn, Dnh, Dnv, Th, Td, Oh, Ih) cannot describe a chiral map's orientation ambiguity.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["MAX_ROTATION_ORDER", "symmetry_operators", "validate_symmetry_name"]

_SQRT3_INV = 1.0 / np.sqrt(3.0)
_PHI = (1.0 + np.sqrt(5.0)) / 2.0  # golden ratio
_A = 1.0 / np.sqrt(1.0 + _PHI**2)  # 0.5257311121
_B = _PHI * _A  # 0.8506508084

# (fold, axis) generators per group, RELION's symmetries.cpp; its decimal constants are written
# here in closed form (e.g. T's 0.816496, 0.577350 = sqrt(2/3), sqrt(1/3)) so that the groups
# close to machine precision. Axes need not be normalised.
_GENERATORS: dict[str, tuple[tuple[int, tuple[float, float, float]], ...]] = {
    "T": ((3, (0.0, 0.0, 1.0)), (2, (0.0, np.sqrt(2.0 / 3.0), _SQRT3_INV))),
    "O": ((3, (_SQRT3_INV, _SQRT3_INV, _SQRT3_INV)), (4, (0.0, 0.0, 1.0))),
    "I1": ((2, (1.0, 0.0, 0.0)), (5, (_B, 0.0, -_A)), (3, (_PHI, 1.0 / _PHI, 0.0))),
    "I2": ((2, (0.0, 0.0, 1.0)), (5, (_A, 0.0, _B)), (3, (0.0, 1.0 / _PHI, _PHI))),
    # RELION also lists a 3-fold for I3 and I4 (to 16 digits, in the group to 2e-8); the 2-fold
    # and the 5-fold generate the whole group, exactly.
    "I3": ((2, (-_A, 0.0, _B)), (5, (0.0, 0.0, 1.0))),
    "I4": ((2, (_A, 0.0, _B)), (5, (2.0 / np.sqrt(5.0), 0.0, 1.0 / np.sqrt(5.0)))),
}
_ORDERS = {"T": 12, "O": 24, "I1": 60, "I2": 60, "I3": 60, "I4": 60}


MAX_ROTATION_ORDER = 1000  # Cn and Dn with n above this are refused (a typo, not a group)

_SUPPORTED = "Cn, Dn (n = 1..1000), T, O, I or I1-I4 (proper rotations only)"

# every point group RELION's symmetries.cpp knows, improper ones included
_RELION_GROUP_RE = re.compile(
    r"C(?P<c>\d+)(?P<csuffix>[VH]?)|CI|CS|S(?P<s>\d+)|D(?P<d>\d+)(?P<dsuffix>[VH]?)"
    r"|T[DH]?|O[H]?|I(?P<i>[1-4]?)H?"
)
_RELION_GROUPS = (
    "Cn, Ci, Cs, Cnv, Cnh, Sn (n even), Dn, Dnv, Dnh, T, Td, Th, O, Oh, I, I1-I4, Ih, I1h-I4h"
)


def validate_symmetry_name(symmetry: str, *, rotations_only: bool = True) -> str:
    """RELION's name of a supported point group, in canonical form; ValueError otherwise.

    Checks the name only (no operator is made), so it is cheap enough to check a
    command-line option before any work. Accepts what :func:`symmetry_operators` accepts, or
    with ``rotations_only=False`` every name RELION refines with.

    Parameters
    ----------
    symmetry: case-insensitive, surrounding spaces ignored: ``C1``, ``Cn``, ``Dn``, ``T``,
        ``O``, ``I``, ``I1``-``I4``.
    rotations_only: False: also the groups with mirrors or an inversion, as RELION's
        ``symmetries.cpp`` names them: ``Ci``, ``Cs``, ``Cnv``, ``Cnh``, ``Sn`` (n even),
        ``Dnv``, ``Dnh``, ``Td``, ``Th``, ``Oh``, ``Ih``, ``I1h``-``I4h``, with no upper bound
        on n (``cryoprior refine`` passes them to RELION).

    Returns
    -------
    The upper-case name (``"c4 "`` -> ``"C4"``; ``I`` stays ``I``).

    Raises
    ------
    ValueError: one line naming the value and what is supported.

    Example
    -------
    >>> validate_symmetry_name("d2")
    'D2'
    >>> validate_symmetry_name("c3v", rotations_only=False)
    'C3V'
    """
    if not isinstance(symmetry, str):
        raise ValueError(f"symmetry {symmetry!r} is not a name: use {_SUPPORTED}")
    name = symmetry.strip().upper()
    if not rotations_only:
        match = _RELION_GROUP_RE.fullmatch(name)
        orders = [] if match is None else [match.group(g) for g in ("c", "d", "s")]
        if (
            match is None
            or any(n is not None and int(n) < 1 for n in orders)
            or (match.group("s") is not None and int(match.group("s")) % 2)
        ):
            raise ValueError(f"unknown symmetry {symmetry!r}: RELION knows {_RELION_GROUPS}")
        return name
    match = re.fullmatch(r"([CD])(\d+)", name)
    if match:
        fold = int(match.group(2))
        if not 1 <= fold <= MAX_ROTATION_ORDER:
            raise ValueError(f"symmetry {symmetry!r}: the order must be 1..{MAX_ROTATION_ORDER}")
        return f"{match.group(1)}{fold}"
    if name in ("T", "O", "I") or name in _GENERATORS:
        return name
    raise ValueError(f"unsupported symmetry {symmetry!r}: use {_SUPPORTED}")


def symmetry_operators(symmetry: str) -> np.ndarray:
    """Rotation matrices of a point group in RELION's standard orientation.

    Parameters
    ----------
    symmetry: RELION's name, case-insensitive: ``C1``, ``Cn``, ``Dn`` (n >= 1), ``T``,
        ``O``, ``I`` (= ``I2``), ``I1``, ``I2``, ``I3``, ``I4``.

    Returns
    -------
    float64 array of shape (order, 3, 3); the identity first; acting on (x, y, z) column
    vectors.

    Raises
    ------
    ValueError: an unknown group or one with improper operations.

    Example
    -------
    >>> ops = symmetry_operators("D2")
    >>> ops.shape, np.round(ops[:, 2, 2]).tolist()
    ((4, 3, 3), [1.0, 1.0, -1.0, -1.0])
    """
    name = validate_symmetry_name(symmetry)
    match = re.fullmatch(r"([CD])(\d+)", name)
    if match:
        fold = int(match.group(2))
        generators = [(fold, (0.0, 0.0, 1.0))]
        order = fold
        if match.group(1) == "D":
            generators.append((2, (1.0, 0.0, 0.0)))
            order = 2 * fold
        return _close_group(generators, order, symmetry)
    if name == "I":
        name = "I2"
    return _close_group(list(_GENERATORS[name]), _ORDERS[name], symmetry)


def _axis_rotation(fold: int, axis) -> np.ndarray:
    """Rotation by 360/fold degrees about ``axis`` (Rodrigues), acting on column vectors."""
    u = np.asarray(axis, dtype=np.float64)
    u = u / np.linalg.norm(u)
    angle = 2.0 * np.pi / fold
    k = np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def _close_group(generators, order: int, symmetry: str) -> np.ndarray:
    """All products of the generators (breadth first), deduplicated to 1e-4."""
    gens = [_axis_rotation(f, a) for f, a in generators]
    found = [np.eye(3)]
    frontier = [np.eye(3)]
    while frontier:
        new = []
        for g in frontier:
            for h in gens:
                p = g @ h
                if not any(np.abs(p - q).max() < 1e-4 for q in found):
                    found.append(p)
                    new.append(p)
        frontier = new
        if len(found) > order:
            break
    if len(found) != order:
        raise AssertionError(f"{symmetry}: generated {len(found)} operators, expected {order}")
    # Re-orthonormalise (generator axes are given to ~1e-9).
    out = []
    for m in found:
        u, _, vt = np.linalg.svd(m)
        out.append(u @ vt)
    return np.stack(out)
