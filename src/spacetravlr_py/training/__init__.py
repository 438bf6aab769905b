"""The training run: trainers (how a gene is fitted), executors (who fits the genes), reporters (who
hears about it), and :func:`train`, which wires one of each onto a run folder.

Public names: :func:`train`, :class:`RunResult`, :class:`RunControl`, :class:`SeedTrainer`,
:class:`SerialExecutor`, :class:`ProcessExecutor`, :class:`ConsoleReporter`, :class:`LogReporter`,
:class:`Reporter`, :class:`GeneFit`, :class:`ClusterFit`, :class:`GeneOutcome`.
"""

from __future__ import annotations

from .control import RunControl
from .executors import Executor, ProcessExecutor, SerialExecutor
from .reporters import ConsoleReporter, LogReporter, Reporter, Reporters, RunEnd, RunStart
from .results import ClusterFit, GeneFit, GeneOutcome
from .run import RunResult, train
from .trainer import SeedTrainer, Trainer

__all__ = ["ClusterFit", "ConsoleReporter", "Executor", "GeneFit", "GeneOutcome", "LogReporter", "ProcessExecutor",
           "Reporter", "Reporters", "RunControl", "RunEnd", "RunResult", "RunStart", "SeedTrainer", "SerialExecutor",
           "Trainer", "train"]
