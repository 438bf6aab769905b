"""Shared test fixtures: paths to ../shared/data (skipped with a reason when absent) and the Python
references (skipped when absent, failed instead under ``make test`` with ../shared/tools present)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared").resolve()
SHARED_DATA = SHARED / "data"
REFERENCE_REQUIRED_ENV = "SPACETRAVLR_REFERENCE_REQUIRED"
"""Set (to 1) by ``make test`` after it built the references: a missing reference then fails the test."""

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the benchmarks package beside src/ (the reference driver)


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data; skips the calling test when it does not exist."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p} (tests that read ../shared/data need it beside the repo)")
    return p


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data folder (skips when absent)."""
    return shared_path()


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory):  # -> builders.TrainedRun
    """A 300-cell synthetic tissue trained in seed mode, shared read-only by the tests that need a run."""
    from builders import train_run

    return train_run(tmp_path_factory.mktemp("small_run"), n_cells=300, seed=3)


def require_reference(version: str | None = None) -> None:
    """Skip the calling test when reference ``version`` (default 0.1.18) or its harness is absent — or
    fail it when ``$SPACETRAVLR_REFERENCE_REQUIRED`` is set (``make test`` built the references, so a
    missing one is an error, not a reason to skip)."""
    from benchmarks import reference as ref

    ok, why = ref.reference_status(version or ref.OLDEST)
    if ok:
        return
    if os.environ.get(REFERENCE_REQUIRED_ENV, "") not in ("", "0"):
        pytest.fail(f"{why} (${REFERENCE_REQUIRED_ENV} is set: make test built the references)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory):  # -> builders.TrainedRun
    """A 300-cell synthetic tissue written as a full-mode run folder (CellID betadata, held-out R² in the
    logs; :class:`builders.PerCellTrainer`), shared read-only."""
    from builders import full_mode_run

    return full_mode_run(tmp_path_factory.mktemp("full_run"), n_cells=300, seed=4)


@pytest.fixture(scope="session")
def problem_run(tmp_path_factory: pytest.TempPathFactory):  # -> builders.TrainedRun
    """A 300-cell run with a failed gene (Pax5) and two orphans (Stat3, Nfkb1: constant expression)."""
    from builders import problem_run as build

    return build(tmp_path_factory.mktemp("problem_run"), n_cells=300, seed=5)
