"""Which condition of a run per condition (``spacetravlr --condition OBS_COL``) the viewer opens.

A run per condition is a parent folder with one ordinary run folder per group under ``conditions/``. The
group is resolved exactly as ``spacetravlr-perturb --condition`` resolves it
(:func:`~spacetravlr_py.rundir.open_run`, its label or folder name); the viewer then shows that group's
cells only, its betadata and its perturbations. A parent opened without a condition opens its first
condition (labels in sorted order, the first whose training has started) and says so in
``GET /api/meta`` (``condition_note``) and on the command line: the viewer is interactive, and the
condition picker switches at once. Conditions are listed only when the parent folder lies under the data
roots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _keys


@dataclass(frozen=True)
class ConditionChoice:
    """The condition a viewer load opens, and the conditions of its run (empty for an ordinary run).

    ``groups``: one ``{"label", "folder", "n_cells", "status"}`` per group, as the parent manifest records
    them; ``parent_toml``: the parent run's repro TOML (configure it with another ``condition`` to switch);
    ``note``: why this condition was opened when none was asked for.
    """

    column: str | None = None
    label: str | None = None
    parent_toml: Path | None = None
    groups: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``GET /api/meta`` keys of the conditions (see docs/viewer.md)."""
        return {"conditions": [dict(g) for g in self.groups], "condition": self.label,
                "condition_column": self.column,
                "condition_parent_toml": str(self.parent_toml) if self.parent_toml else None,
                "condition_note": self.note}


def run_conditions(toml: Path, allowed: Callable[[Path], bool]) -> tuple[Path, Path, list[dict[str, Any]]]:
    """The run folder of ``toml``, the folder of the run per condition it belongs to (itself, or the parent
    of a condition folder) and that run's conditions: empty for an ordinary run, and when that folder is
    not ``allowed`` (outside the data roots: its manifest is not read)."""
    from ..perturbation.compare import list_conditions
    from ..rundir.conditions import parent_run
    from ..rundir.run import run_folder

    root = run_folder(toml)
    home = parent_run(root) or root
    return root, home, list_conditions(home) if allowed(home) else []


def first_condition(home: Path, groups: list[dict[str, Any]]) -> str | None:
    """The label of the first group whose folder holds a repro TOML (its training started), or None."""
    from ..rundir.conditions import condition_dir

    return next((str(g["label"]) for g in groups
                 if (condition_dir(home, str(g["folder"])) / _keys.REPRO_TOML).is_file()), None)


def default_note(column: str | None, label: str, groups: list[dict[str, Any]]) -> str:
    """The one line saying which condition a parent run opened without ``--condition`` shows."""
    from ..errors import short_list

    return (f"this run trains one model set per obs['{column}'] group; showing condition '{label}' "
            f"(conditions: {short_list([str(g['label']) for g in groups])}); pick another with --condition "
            "GROUP or the Condition menu of the Dataset panel")
