"""Betadata of a run mapped onto cells: :class:`Betabase`, :class:`GeneModel`, :func:`load_betabase`."""

from __future__ import annotations

from .betabase import Betabase, GeneModel, load_betabase

__all__ = ["Betabase", "GeneModel", "load_betabase"]
