"""Betadata: one gene's table (:class:`BetaFrame`; files read and written by :func:`read_betadata`,
:func:`write_betadata`) and a run's betadata mapped onto cells (:class:`Betabase`, :class:`GeneModel`,
:func:`load_betabase`), aggregated per cell type by :func:`collect_interactions`."""

from __future__ import annotations

from .betabase import Betabase, GeneModel, load_betabase
from .frame import BetaFrame, read_betadata, write_betadata
from .interactions import collect_interactions

__all__ = ["BetaFrame", "Betabase", "GeneModel", "collect_interactions", "load_betabase", "read_betadata",
           "write_betadata"]
