"""Perturbation TOML (``spacetravlr-perturb --config perturb.toml``): a run plus overlays and jobs.

One file names the training run and changes some of its settings for this perturbation only::

    run_toml = "runs/a/spacetravlr_run_repro.toml"   # relative to this file (aliases: run_repro,
                                                     # spacetravlr_run_repro); --run-toml wins
    beta_scale_factor = 2.0       # top-level beta_scale_factor / beta_cap: moved under [perturbation]

    [perturbation]                # overlay sections: merged onto the run's repro TOML, key by key
    n_propagation = 3
    [spatial]
    radius = 150.0
    [data]
    adata_path = "tissue_copy.h5ad"

    genes = ["Foxo1", "Pax5"]     # any other top-level key (and [[jobs]]) is a batch-job field,
    out_dir = "ko"                # exactly as in a --batch-toml file (see perturb/batch.py)

Overlay values are validated like the config file and reported against this file; relative paths in
them resolve against this file's folder. Exactly the overlaid keys change (an overlaid
``[compat].mode`` also moves the keys that follow it, as in a config file). Keys of the Rust seed are
read as in a config file (:mod:`spacetravlr_py.seedkeys`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _keys
from ..config import SECTIONS, SpaceshipConfig, field_name
from ..errors import ConfigError, near_matches

log = logging.getLogger("spacetravlr_py.perturb")

RUN_TOML_KEYS = ("run_toml", "run_repro", "spacetravlr_run_repro")
"""Top-level keys naming the run's repro TOML (the seed reads all three)."""
HOISTED = ("beta_scale_factor", "beta_cap")
"""Top-level keys that are ``[perturbation]`` settings (a per-gene list of beta_scale_factor stays a job field)."""
SEED_SECTIONS = ("ligand_field",)
NO_EFFECT = ("lasso", "training", "cnn", "model_export")
"""Overlay sections that cannot change a perturbation (the betas are trained already)."""


@dataclass
class PerturbToml:
    """A perturbation TOML, read and validated (the run itself is not opened).

    Attributes
    ----------
    path : the file.
    run_toml : the run's repro TOML named in the file (absolute), or None.
    overlay : ``{"section.key": value}`` merged onto the run's configuration (paths absolute).
    batch : top-level batch-job fields and ``jobs`` (empty: no batch in this file).
    notes : one line per seed key read but not implemented.
    """

    path: Path
    run_toml: Path | None = None
    overlay: dict[str, Any] = field(default_factory=dict)
    batch: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def apply(self, cfg: SpaceshipConfig) -> SpaceshipConfig:
        """``cfg`` with the overlay merged (a copy); errors name this file and the key."""
        return cfg.with_overrides(self.overlay, source=str(self.path)) if self.overlay else cfg


def read_perturb_toml(path: str | os.PathLike[str]) -> PerturbToml:
    """Read a perturbation TOML; one :class:`ConfigError` line per mistake."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: perturbation TOML not found; check --config") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, expected a perturbation .toml file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{p}: cannot read the perturbation TOML ({e.__class__.__name__}: {e})") from None
    out = PerturbToml(path=p.resolve())
    label = str(p)
    out.run_toml = _run_toml(raw, p, label)
    sections: dict[str, Any] = {}
    for key in list(raw):
        value = raw[key]
        if key in SECTIONS or key in SEED_SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{label}: [{key}] must be a table of settings, got {value!r}")
            sections[key] = dict(value)
        elif isinstance(value, Mapping):
            raise ConfigError(f"{label}: unknown section [{key}]" + near_matches(key, [*SECTIONS, *SEED_SECTIONS])
                              + "; overlay sections are those of the run TOML ([data], [spatial], [perturbation], …)")
        elif key not in RUN_TOML_KEYS:
            out.batch[key] = value
    _hoist(out.batch, sections, label)
    from ..seedkeys import absorb_seed_keys

    sections, out.notes = absorb_seed_keys(sections, label)
    for note in out.notes:
        log.warning("%s", note)
    for sec in NO_EFFECT:
        if sections.get(sec):
            note = f"{label}: [{sec}] has no effect on a perturbation (the betas are trained already)"
            out.notes.append(note)
            log.warning("%s", note)
    out.overlay = _flatten(sections, p.parent, label)
    SpaceshipConfig().with_overrides(out.overlay, source=label)  # validate now, before the run is opened
    return out


def _run_toml(raw: Mapping[str, Any], p: Path, label: str) -> Path | None:
    given = [k for k in RUN_TOML_KEYS if k in raw]
    if len(given) > 1:
        raise ConfigError(f"{label}: {given[0]} and {given[1]} both name the run; keep one")
    if not given:
        return None
    v = raw[given[0]]
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{label}: {given[0]} = {v!r}: expected the path of a {_keys.REPRO_TOML}")
    if "\x00" in v:
        raise ConfigError(f"{label}: {given[0]} = {v!r}: a path cannot contain a NUL character (\\0)")
    return (p.parent / os.path.expanduser(v.strip())).resolve()


def _hoist(batch: dict[str, Any], sections: dict[str, Any], label: str) -> None:
    """Top-level ``beta_scale_factor`` / ``beta_cap`` are ``[perturbation]`` settings."""
    for key in HOISTED:
        if key not in batch or (key == "beta_scale_factor" and isinstance(batch[key], list)):
            continue  # absent, or a per-gene list: a batch-job field
        pert = sections.setdefault("perturbation", {})
        if key in pert:
            raise ConfigError(f"{label}: {key} is set both at the top level and under [perturbation]; keep one")
        value = batch.pop(key)
        if isinstance(value, list):
            raise ConfigError(f"{label}: {key} = {value!r}: expected one number (only beta_scale_factor may be "
                              "a list, one value per gene)")
        pert[key] = value


def _flatten(sections: Mapping[str, Any], base: Path, label: str) -> dict[str, Any]:
    """``{"section.key": value}`` with relative paths resolved against ``base``."""
    flat: dict[str, Any] = {}
    for sec, table in sections.items():
        cls = SECTIONS.get(sec)
        for key, value in table.items():
            name = field_name(cls, key) if cls is not None else None
            if cls is None or name is None:
                # unknown key: with_overrides reports it with a suggestion
                flat[f"{sec}.{key}"] = value
                continue
            kind = next(f.metadata["kind"] for f in dataclasses.fields(cls) if f.name == name)
            if kind == "path" and isinstance(value, str) and value and "\x00" not in value:
                value = str((base / os.path.expanduser(value)).resolve())
            flat[f"{sec}.{key}"] = value
    return flat


def perturb_toml_arg(config: str | None, positional: str | None) -> PerturbToml | None:
    """The perturbation TOML of ``--config`` / ``--perturb-toml`` or the first positional argument."""
    if config and positional and Path(config).resolve() != Path(positional).resolve():
        raise ConfigError(f"two perturbation TOMLs given ({config} and {positional}); give one")
    chosen = config or positional
    return read_perturb_toml(chosen) if chosen else None
