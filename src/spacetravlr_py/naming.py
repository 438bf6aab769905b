"""Modulator names and their kind codes: the one place that writes and reads ``TF``, ``L$R``, ``L#TF``.

A target gene's modulators (SPEC §4) are named

==========  ================  =====  ==========================================================
kind        name              code   feature
==========  ================  =====  ==========================================================
TF          ``Foxo1``         0      expression of the TF
LR          ``Il6$Il6st``     1      received(ligand) × expression(receptor)
TFL         ``Il6#Stat3``     2      received(ligand) × expression(TF), ligand first
EXTRA       ``Gapdh``         3      expression of a gene the user added
==========  ================  =====  ==========================================================

The code is the group id of the sparse group lasso, the ``groups`` of a betadata frame and the term
``kind`` of the perturbation kernels. An extra modulator's name looks like a TF's, so a name read back
from a betadata file parses as :data:`TF`; only training knows :data:`EXTRA`.

This module imports only :mod:`spacetravlr_py._keys` (the separators) and :mod:`spacetravlr_py.errors`,
so betadata, perturbation and training all use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ._keys import LR_SEP, TFL_SEP
from .errors import InputError

TF, LR, TFL, EXTRA = 0, 1, 2, 3
"""Kind codes of modulators (group ids / term kinds)."""
KIND_NAMES: tuple[str, ...] = ("tf", "lr", "tfl", "extra")
"""``KIND_NAMES[code]`` is the short name of a kind."""


class Modulator(NamedTuple):
    """A parsed modulator name.

    ``first`` is the TF (or extra gene) or the ligand; ``second`` the receptor (:data:`LR`), the TF
    (:data:`TFL`) or ``""``.
    """

    kind: int
    first: str
    second: str

    @property
    def ligand(self) -> str | None:
        """The ligand of an ``L$R`` or ``L#TF`` term, None for a TF."""
        return self.first if self.kind in (LR, TFL) else None


def lr_name(ligand: str, receptor: str) -> str:
    """``L$R``."""
    return f"{ligand}{LR_SEP}{receptor}"


def tfl_name(ligand: str, tf: str) -> str:
    """``L#TF`` (ligand first)."""
    return f"{ligand}{TFL_SEP}{tf}"


def parse_modulator(name: str) -> Modulator:
    """Split a modulator name at its first separator (``$`` before ``#``).

    >>> parse_modulator("Il6$Il6st")
    Modulator(kind=1, first='Il6', second='Il6st')
    >>> parse_modulator("Il6#Stat3").ligand, parse_modulator("Foxo1")
    ('Il6', Modulator(kind=0, first='Foxo1', second=''))
    """
    if LR_SEP in name:
        lig, rec = name.split(LR_SEP, 1)
        return Modulator(LR, lig, rec)
    if TFL_SEP in name:
        lig, tf = name.split(TFL_SEP, 1)
        return Modulator(TFL, lig, tf)
    return Modulator(TF, name, "")


def modulator_kind(name: str) -> int:
    """Kind code of a modulator name: :data:`LR`, :data:`TFL` or :data:`TF` (TF or extra gene)."""
    return parse_modulator(name).kind


def parse_lr(items: Iterable[str], *, source: str = "extra_lr") -> list[tuple[str, str]]:
    """User-given ligand–receptor pairs ``["L$R", "L,R"]`` → ``[(L, R), ...]``.

    Blank items are skipped; anything but exactly two non-empty names is one :class:`InputError`
    naming ``source`` and the item.
    """
    out: list[tuple[str, str]] = []
    for raw in items:
        s = raw.strip()
        if not s:
            continue
        sep = LR_SEP if LR_SEP in s else ","
        parts = [p.strip() for p in s.split(sep)]
        if len(parts) != 2 or not all(parts):
            raise InputError(f"{source}: {raw!r} is not a ligand-receptor pair; write it as L$R or L,R")
        out.append((parts[0], parts[1]))
    return out
