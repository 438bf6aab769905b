"""Betadata of a run mapped onto cells: :class:`Betabase`, :class:`GeneModel`, :func:`load_betabase`,
:func:`collect_interactions`."""

from __future__ import annotations

from .betabase import Betabase, GeneModel, load_betabase
from .interactions import collect_interactions

__all__ = ["Betabase", "GeneModel", "collect_interactions", "load_betabase"]
