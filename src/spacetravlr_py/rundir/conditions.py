"""Condition folders of a run: ``{run}/conditions/{folder}/``, one ordinary run folder per group.

A run with ``[data].condition`` set trains each group of that obs column into its own folder under
``conditions/``. Each is a complete run folder (repro TOML with ``[data].condition_group`` set, manifest,
betadata, logs, and ``condition_label.txt`` holding the group's label as the Rust seed writes it), so
:func:`~spacetravlr_py.rundir.open_run` works on it directly. The parent run's manifest records the
``label ↔ folder`` map (``conditions.groups``); runs of the seed, which write only the label files, are
discovered from those.

Folder names: the label with every character other than ``A–Z a–z 0–9 - _ .`` replaced by ``_`` (runs of
``_`` collapsed, ``_`` and ``.`` trimmed at both ends, at most 64 characters, ``group`` when nothing is
left), as the seed does; a name already taken — compared case-insensitively, so that macOS and Windows do
not merge two folders — gets ``_2``, ``_3``… (labels in sorted order). Names recorded by an earlier run
of the folder are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from .. import _keys
from ..errors import InputError, near_matches, short_list
from .manifest import Manifest

log = logging.getLogger("spacetravlr_py.rundir")

MAX_NAME = 64


def sanitize_group(label: str) -> str:
    """The folder name of a group label before collisions are resolved (see the module docstring)."""
    out: list[str] = []
    prev_sep = False
    for ch in label.strip():
        c = ch if (ch.isascii() and (ch.isalnum() or ch in "-_.")) else "_"
        if c == "_":
            if not prev_sep:
                out.append("_")
            prev_sep = True
        else:
            out.append(c)
            prev_sep = False
        if len(out) >= MAX_NAME:
            break
    name = "".join(out).strip("_").strip(".").strip("_")
    return name or "group"


def folder_names(labels: Iterable[str], taken: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{label: folder}``: collision-free names (case-insensitively), keeping the names of ``taken``."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for lab, folder in (taken or {}).items():
        out[lab] = folder
        used.add(folder.casefold())
    for lab in sorted(labels):
        if lab in out:
            continue
        base = sanitize_group(lab)
        name, i = base, 2
        while name.casefold() in used:
            name, i = f"{base}_{i}", i + 1
        out[lab] = name
        used.add(name.casefold())
    return out


def condition_dir(root: Path, folder: str) -> Path:
    return Path(root) / _keys.CONDITIONS_DIR / folder


def parent_run(folder: Path) -> Path | None:
    """The run folder that ``folder`` is a condition folder of (``{run}/conditions/{folder}``), or None."""
    up = Path(folder).resolve().parent
    if up.name != _keys.CONDITIONS_DIR:
        return None
    run = up.parent
    if (run / _keys.REPRO_TOML).is_file() or (run / _keys.MANIFEST_JSON).is_file():
        return run
    return None


def recorded_groups(root: Path) -> dict[str, str]:
    """``{label: folder}`` of a run per condition: from its manifest, else from the seed's label files."""
    m = Manifest.read(Path(root) / _keys.MANIFEST_JSON)
    groups = (m.conditions.get("groups") if m is not None and isinstance(m.conditions, dict) else None) or []
    found = {str(g["label"]): str(g["folder"]) for g in (groups if isinstance(groups, list) else [])
             if isinstance(g, dict) and "label" in g and "folder" in g}
    if found:
        return found
    base = Path(root) / _keys.CONDITIONS_DIR
    if base.is_dir():
        for d in sorted(base.iterdir()):
            label_file = d / _keys.CONDITION_LABEL_FILE
            if label_file.is_file():
                found[label_file.read_text(encoding="utf-8").strip()] = d.name
    return found


def condition_folder(root: Path, group: str, *, where: str) -> Path:
    """The folder of condition ``group`` (a label, or a folder name) of the run in ``root``."""
    groups = recorded_groups(root)
    if not groups:
        raise InputError(f"{where}: the run in {root} has no condition folders ({_keys.CONDITIONS_DIR}/…); drop "
                         "--condition, or train with --condition OBS_COL first")
    folder = groups.get(group) or next((f for f in groups.values() if f == group), None)
    if folder is None:
        raise InputError(f"{where}: no condition '{group}'{near_matches(group, groups)} in {root} "
                         f"(conditions: {short_list(groups)})")
    d = condition_dir(root, folder)
    if not (d / _keys.REPRO_TOML).is_file():
        raise InputError(f"{where}: condition '{group}' has no {_keys.REPRO_TOML} in {d}; its training has not "
                         "started (run the training command again, or join it with --join-output-dir)")
    return d


def own_label(folder: Path) -> str | None:
    """The label in a condition folder's ``condition_label.txt`` (the seed's record), or None."""
    p = Path(folder) / _keys.CONDITION_LABEL_FILE
    return p.read_text(encoding="utf-8").strip() if p.is_file() else None
