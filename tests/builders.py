"""Builders of the objects tests need: small tissues, networks, betadata frames, betabases, trained runs.

One importable module (``from builders import ...``; ``tests/`` is on ``sys.path`` under pytest) instead
of each test file building these by hand. The planted-truth generator stays
:func:`spacetravlr_py.datasets.synthetic_tissue`; the builders here wrap it (written to disk, trained)
or build tiny hand-checkable objects whose every value a test can compute by hand.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spacetravlr_py import _keys
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import SyntheticTissue, synthetic_tissue

# --------------------------------------------------------------------------------------------------
# synthetic tissues on disk and trained runs
# --------------------------------------------------------------------------------------------------


@dataclass
class WrittenTissue:
    """A synthetic tissue written to a folder: ``tissue.h5ad`` and ``mouse_network.parquet``."""

    syn: SyntheticTissue
    h5ad: Path
    net_dir: Path

    @property
    def genes(self) -> list[str]:
        return list(self.syn.adata.var_names)

    def cli_args(self, out: Path, *extra: str) -> list[str]:
        """``spacetravlr`` flags that train this tissue into ``out`` with plain progress."""
        return ["--h5ad", str(self.h5ad), "--network-dir", str(self.net_dir), "--output-dir", str(out), "--plain",
                *extra]

    def variant(self, folder: Path, edit: Callable[[Any], None]) -> Path:
        """A copy of the tissue with ``edit(adata)`` applied, written to ``folder``; returns its h5ad path."""
        a = self.syn.adata.copy()
        edit(a)
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / "tissue.h5ad"
        a.write_h5ad(p)
        return p


def write_tissue(folder: Path, **synthetic_kw: Any) -> WrittenTissue:
    """:func:`synthetic_tissue` (``synthetic_kw``) written to ``folder``."""
    syn = synthetic_tissue(**synthetic_kw)
    paths = syn.write(folder)
    return WrittenTissue(syn, paths["h5ad"], paths["network"].parent)


def run_config(data: WrittenTissue, out: Path, **overrides: Any) -> SpaceshipConfig:
    """The configuration that trains ``data`` into ``out``; ``section__key=value`` overrides more keys."""
    o: dict[str, Any] = {"data.adata_path": str(data.h5ad), "grn.network_data_dir": str(data.net_dir),
                         "execution.output_dir": str(out)}
    o.update({k.replace("__", "."): v for k, v in overrides.items()})
    return SpaceshipConfig().with_overrides(o)


@dataclass
class TrainedRun:
    """A synthetic tissue and the seed-mode training run made from it."""

    data: WrittenTissue
    run_dir: Path

    @property
    def syn(self) -> SyntheticTissue:
        return self.data.syn

    @property
    def toml(self) -> Path:
        """The run's ``spacetravlr_run_repro.toml``."""
        return self.run_dir / _keys.REPRO_TOML


def train_run(base: Path, *, config: dict[str, Any] | None = None, **synthetic_kw: Any) -> TrainedRun:
    """Write a synthetic tissue to ``base/data`` and train it (seed mode, silently) into ``base/run``.

    ``config`` holds further ``{"section.key": value}`` overrides. Fails the test when a gene failed.
    """
    from spacetravlr_py.training import train

    data = write_tissue(base / "data", **synthetic_kw)
    out = base / "run"
    cfg = run_config(data, out)
    if config:
        cfg = cfg.with_overrides(config)
    res = train(cfg, quiet=True, stream=io.StringIO())
    assert res.counts["done"] > 0 and res.counts["failed"] == 0, res.counts
    return TrainedRun(data, out)
