"""The training run: work queue, per-gene fits, locks, workers, progress and outputs.

Public names: :func:`train`, :class:`RunResult`.
"""

from __future__ import annotations

from .run import RunResult, train

__all__ = ["RunResult", "train"]
