"""Splash derivatives and in-silico perturbation.

Public names: :func:`splash`, :class:`LigandTable`, :func:`perturb`, :class:`Perturber`,
:class:`PerturbSettings`, :class:`PerturbResult`, :func:`resolve_scope`.
"""

from __future__ import annotations

from .propagate import Perturber, PerturbResult, PerturbSettings, perturb, resolve_scope
from .splash import LigandTable, splash

__all__ = ["LigandTable", "PerturbResult", "PerturbSettings", "Perturber", "perturb", "resolve_scope", "splash"]
