"""The per-ligand radius rule (SPEC §3), in one place.

Every ligand's received amount uses ``[spatial].radius``, except under ``per_ligand_radius = true``
(the Python reference's rule), where ligands whose CellChat class is not ``Secreted Signaling``
(cell–cell contact, ECM–receptor) use ``contact_distance``. A ligand's class comes from its first ``lr``
row among the genes present; a ligand without such a row (``None``) counts as secreted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .. import _keys


def ligand_radius(signaling: str | None, *, radius: float, contact_distance: float,
                  per_ligand_radius: bool) -> float:
    """The radius of one ligand of CellChat class ``signaling``."""
    if per_ligand_radius and (signaling or _keys.SECRETED) != _keys.SECRETED:
        return float(contact_distance)
    return float(radius)


def ligand_radii(ligands: Sequence[str], signaling: Mapping[str, str | None], *, radius: float,
                 contact_distance: float, per_ligand_radius: bool) -> np.ndarray:
    """Radii of ``ligands`` (float64 array) given each one's class (missing = no ``lr`` row)."""
    return np.array([ligand_radius(signaling.get(l), radius=radius, contact_distance=contact_distance,
                                   per_ligand_radius=per_ligand_radius) for l in ligands], dtype=np.float64)
