"""The screen folder: what was asked, one result file per finished gene, and the ranked outputs.

::

    screen_spec.json          the request and the resolved genes (written before the first gene)
    genes/{gene}.json         one finished gene (a GeneScore), written atomically
    screen.csv, screen.json   the ranked table (when every gene is finished)
    screen_cell_types.csv     mean |Δ| per (gene, cell type), genes in rank order
    screen_top.png            top genes by impact
    screen_heatmap.png        gene × cell type heat map of the top genes

A gene's file exists only once the gene is finished (atomic rename), so an interrupted screen leaves
finished genes and nothing else; a rerun with the same request skips them, and a rerun of a finished
screen does nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import _keys
from ..errors import InputError
from ..io.atomic import TMP_SUFFIX, atomic_write_text
from .screen import GeneScore, GeneTask, cell_type_table, rank_scores, write_screen

SPEC_VERSION = 1


@dataclass
class ScreenRequest:
    """What a screen was asked to do (compared on resume: a folder holds one screen)."""

    run_toml: str
    mode: str = "knockout"
    genes: list[str] | None = None
    """An explicit gene list (``--genes`` / ``--genes-file``), or None for every gene with ``roles``."""
    roles: list[str] | None = None
    n_propagation: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    """Perturbation settings that change the result (``[perturbation]`` overrides...)."""

    def differs(self, other: ScreenRequest) -> str | None:
        """The first field whose value differs, as ``key = old, now new`` (None: the same request)."""
        a, b = asdict(self), asdict(other)
        for k in a:
            if a[k] != b[k]:
                return f"{k} = {a[k]!r}, now {b[k]!r}"
        return None


@dataclass
class ScreenSpec:
    """The request and what it resolved to on the run: the tasks (gene, value, roles) in screening order,
    the genes skipped because they modulate no trained gene, the cell types."""

    request: ScreenRequest
    tasks: list[GeneTask]
    skipped: list[str] = field(default_factory=list)
    cell_types: list[str] = field(default_factory=list)

    @property
    def genes(self) -> list[str]:
        return [t.gene for t in self.tasks]

    def to_json(self) -> dict[str, Any]:
        return {"version": SPEC_VERSION, "request": asdict(self.request),
                "tasks": [{"gene": t.gene, "value": t.value, "roles": list(t.roles)} for t in self.tasks],
                "skipped": self.skipped, "cell_types": self.cell_types}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ScreenSpec:
        req = ScreenRequest(**d["request"])
        tasks = [GeneTask(str(t["gene"]), float(t["value"]), tuple(t["roles"]), req.n_propagation) for t in d["tasks"]]
        return cls(request=req, tasks=tasks, skipped=list(d.get("skipped", [])),
                   cell_types=list(d.get("cell_types", [])))


class ScreenDir:
    """The files of one screen folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def spec_path(self) -> Path:
        return self.root / _keys.SCREEN_SPEC_JSON

    @property
    def genes_dir(self) -> Path:
        return self.root / _keys.SCREEN_GENES_DIR

    def gene_path(self, gene: str) -> Path:
        return self.genes_dir / _keys.SCREEN_GENE_JSON.format(gene=gene)

    def read_spec(self) -> ScreenSpec | None:
        if not self.spec_path.is_file():
            return None
        try:
            return ScreenSpec.from_json(json.loads(self.spec_path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{self.spec_path}: not a screen description ({e}); choose another --out-dir") from None

    def write_spec(self, spec: ScreenSpec) -> None:
        self.genes_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.spec_path, json.dumps(spec.to_json(), indent=1))

    def finished(self, genes: Sequence[str]) -> set[str]:
        """Genes whose result file exists."""
        return {g for g in genes if self.gene_path(g).is_file()}

    def write_score(self, score: GeneScore) -> Path:
        return atomic_write_text(self.gene_path(score.gene), json.dumps(score.to_json()))

    def read_score(self, gene: str) -> GeneScore:
        p = self.gene_path(gene)
        try:
            return GeneScore.from_json(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as e:
            raise InputError(f"{p}: unreadable screen result ({e}); delete it to recompute the gene") from None

    def remove_temporaries(self) -> None:
        """Temporary files a killed screen left (never a finished gene's file)."""
        for f in self.genes_dir.glob(f".*{TMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()

    def outputs_exist(self) -> bool:
        return (self.root / _keys.SCREEN_CSV).is_file() and (self.root / _keys.SCREEN_JSON).is_file()


def write_outputs(sd: ScreenDir, spec: ScreenSpec, *, figures: bool = True) -> dict[str, Path]:
    """Rank the finished genes of ``spec`` and write the table, the cell-type table and the figures."""
    from ..io.atomic import atomic_write

    scores = [sd.read_score(g) for g in spec.genes]
    ranked = rank_scores(scores)
    files = write_screen(ranked, sd.root, mode=spec.request.mode)
    ct = cell_type_table(scores, ranked["gene"].tolist())
    files["cell_types"] = atomic_write(sd.root / _keys.SCREEN_CELL_TYPES_CSV, lambda p: ct.to_csv(p))
    if figures and len(ranked):
        from .. import plotting

        files["top_png"] = sd.root / _keys.SCREEN_TOP_PNG
        plotting.screen_top(ranked, n=20, show=False, save=files["top_png"],
                            title=f"{spec.request.mode} screen: top genes by impact")
        if ct.shape[1]:
            files["heatmap_png"] = sd.root / _keys.SCREEN_HEATMAP_PNG
            plotting.screen_heatmap(ct, n=30, show=False, save=files["heatmap_png"])
    return files


@dataclass
class LoadedScreen:
    """A screen folder read back: the ranking of its finished genes and their per-cell-type impact."""

    folder: Path
    mode: str
    ranked: pd.DataFrame
    cell_types: pd.DataFrame | None
    n_missing: int = 0


def load_screen(folder: str | os.PathLike[str]) -> LoadedScreen:
    """Read a screen folder (finished or not) for a report."""
    sd = ScreenDir(folder)
    spec = sd.read_spec()
    if spec is None:
        csv = sd.root / _keys.SCREEN_CSV
        if not csv.is_file():
            raise InputError(f"{sd.root}: not a screen folder (no {_keys.SCREEN_SPEC_JSON} or {_keys.SCREEN_CSV}); "
                             "pass the --out-dir of `spacetravlr-perturb screen`")
        mode = json.loads((sd.root / _keys.SCREEN_JSON).read_text()).get("mode", "knockout") \
            if (sd.root / _keys.SCREEN_JSON).is_file() else "knockout"
        return LoadedScreen(sd.root, mode, pd.read_csv(csv), None)
    done = [g for g in spec.genes if g in sd.finished(spec.genes)]
    scores = [sd.read_score(g) for g in done]
    ranked = rank_scores(scores)
    return LoadedScreen(sd.root, spec.request.mode, ranked, cell_type_table(scores, ranked["gene"].tolist()),
                        n_missing=len(spec.genes) - len(done))
