"""``spacetravlr_manifest.json``: what a training run did, and what it resolved for later readers.

Besides the bookkeeping (status, times, genes, timings, versions) the manifest records what training
resolved from the configuration and the network, so that perturbation, the viewer and reports open a run
without reloading the network: each ligand's CellChat signaling class and radius, the kernel and scale,
the cluster labels, and the modulators per gene by family.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_write_text

#: the statuses a manifest can hold
RUNNING, COMPLETE, COMPLETE_WITH_FAILURES, PARTIAL, INTERRUPTED = (
    "running", "complete", "complete_with_failures", "partial", "interrupted")


@dataclass
class LigandRecord:
    """How training computed one ligand's received amount."""

    signaling: str | None
    """CellChat class of the ligand's first ``lr`` row among the genes present (None: no such row)."""
    radius: float


@dataclass
class Manifest:
    """The typed content of ``spacetravlr_manifest.json`` (unknown keys of other versions are kept)."""

    status: str = RUNNING
    started: str | None = None
    finished: str | None = None
    dataset: dict[str, Any] = field(default_factory=dict)
    network: str | None = None
    species: str = ""
    output_dir: str = ""
    genes: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    received_ligands: list[str] = field(default_factory=list)
    n_parallel: int = 1
    versions: dict[str, str] = field(default_factory=dict)
    mode: str = "seed"
    cluster_labels: list[str] = field(default_factory=list)
    spatial: dict[str, Any] = field(default_factory=dict)
    """``kernel``, ``scale``, ``radius``, ``contact_distance``, ``per_ligand_radius`` used for received ligands."""
    ligands: dict[str, LigandRecord] = field(default_factory=dict)
    modulators: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per trained gene: number of modulators by family (``tf``, ``lr``, ``tfl``, ``extra``)."""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- resolved information ------------------------------------------------------------------------
    @property
    def has_ligands(self) -> bool:
        """True when training recorded the ligands (manifests of this version onwards)."""
        return bool(self.spatial)

    def ligand_signaling(self) -> dict[str, str | None]:
        return {name: rec.signaling for name, rec in self.ligands.items()}

    # -- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d["ligands"] = {k: dataclasses.asdict(v) for k, v in self.ligands.items()}
        return {**d, **{k: v for k, v in self.extra.items() if k not in d}}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kw: dict[str, Any] = {k: v for k, v in raw.items() if k in names}
        ligs = kw.pop("ligands", None) or {}
        m = cls(**kw, extra={k: v for k, v in raw.items() if k not in names})
        m.ligands = {str(k): LigandRecord(signaling=v.get("signaling"), radius=float(v["radius"]))
                     for k, v in ligs.items() if isinstance(v, dict) and "radius" in v}
        return m

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Atomically write the manifest as indented JSON."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Manifest | None:
        """The manifest at ``path``, or None when it is missing or unreadable (a run of an older tool)."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(raw, dict):
            return None
        try:
            return cls.from_dict(raw)
        except (TypeError, ValueError, KeyError):
            return None
