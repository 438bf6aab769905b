"""Transition field on the embedding: probabilities (colΔCor), per-cell vectors, grid field.

Public names: :func:`transition_field`, :func:`transition_probabilities`, :func:`cell_vectors`,
:func:`grid_field`, :func:`knn`, :class:`TransitionGraph`, :class:`GridField`, :class:`TransitionField`.
"""

from __future__ import annotations

from .field import (
    GridField,
    TransitionField,
    TransitionGraph,
    cell_vectors,
    grid_field,
    knn,
    transition_field,
    transition_probabilities,
)

__all__ = ["GridField", "TransitionField", "TransitionGraph", "cell_vectors", "grid_field", "knn",
           "transition_field", "transition_probabilities"]
