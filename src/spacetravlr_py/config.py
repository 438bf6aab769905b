"""Typed, validated configuration: the ``spaceship_config.toml`` schema of SPEC §2.3.

One :class:`SpaceshipConfig` object is built at the edge (TOML file, then command-line overrides) and
flows inward; inner code never re-reads TOML or environment variables.

>>> cfg = SpaceshipConfig.from_toml("spaceship_config.toml")      # doctest: +SKIP
>>> cfg = cfg.with_overrides({"lasso.l1_reg": 1e-4}, source="--l1-reg")  # doctest: +SKIP
>>> cfg.dump_toml("spacetravlr_run_repro.toml")                    # doctest: +SKIP

Every bad value raises :class:`~spacetravlr_py.errors.ConfigError` with one line naming the file, the
key, the value and the expected form.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _keys
from .errors import ConfigError, near_matches

log = logging.getLogger("spacetravlr_py.config")

# ----------------------------------------------------------------------------------------------
# Field descriptors
# ----------------------------------------------------------------------------------------------

_KINDS = ("str", "float", "int", "bool", "list[str]", "path")


def _opt(
    default: Any,
    kind: str,
    *,
    optional: bool = False,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | None = None,
    aliases: tuple[str, ...] = (),
    doc: str = "",
) -> Any:
    """A config field with its validation rules (stored in dataclass metadata)."""
    assert kind in _KINDS
    meta = dict(kind=kind, optional=optional, ge=ge, gt=gt, le=le, lt=lt, choices=choices,
                aliases=aliases, doc=doc)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _expected(meta: Mapping[str, Any]) -> str:
    kind = meta["kind"]
    if meta["choices"]:
        desc = "one of " + ", ".join(f'"{c}"' for c in meta["choices"])
    elif kind == "list[str]":
        desc = "a list of strings, e.g. [\"A\", \"B\"]"
    elif kind == "path":
        desc = "a path string"
    elif kind == "bool":
        desc = "true or false"
    else:
        desc = {"str": "a string", "float": "a number", "int": "an integer"}[kind]
        bounds = []
        if meta["gt"] is not None:
            bounds.append(f"> {meta['gt']:g}")
        if meta["ge"] is not None:
            bounds.append(f">= {meta['ge']:g}")
        if meta["lt"] is not None:
            bounds.append(f"< {meta['lt']:g}")
        if meta["le"] is not None:
            bounds.append(f"<= {meta['le']:g}")
        if bounds:
            desc += " " + " and ".join(bounds)
    if meta["optional"]:
        desc += " (or omit the key)"
    return desc


def _fmt_value(v: Any) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def _coerce(value: Any, meta: Mapping[str, Any], where: str) -> Any:
    """Validate ``value`` against ``meta``; return the normalised value or raise ConfigError."""

    given = value  # the value as written, for the message (``value`` is normalised below)

    def bad() -> ConfigError:
        hint = ""
        if isinstance(given, str) and meta["kind"] in ("float", "int"):
            hint = " (write numbers without quotes)"
        return ConfigError(f"{where} = {_fmt_value(given)}: expected {_expected(meta)}{hint}")

    if value is None:
        if meta["optional"]:
            return None
        raise bad()
    kind = meta["kind"]
    if kind in ("str", "path"):
        if not isinstance(value, str):
            raise bad()
        if kind == "path" and "\x00" in value:
            raise ConfigError(f"{where} = {given!r}: a path cannot contain a NUL character (\\0); fix the path")
        if meta["choices"] and value not in meta["choices"]:
            raise ConfigError(f"{where} = {_fmt_value(given)}: expected {_expected(meta)}"
                              + near_matches(value, meta["choices"]))
        # ~ and ~user in a TOML file mean what they mean on the command line
        return os.path.expanduser(value) if kind == "path" and value.startswith("~") else value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if kind == "list[str]":
        if isinstance(value, str):
            # a comma-separated string is a convenience for command-line flags
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise bad()
        return list(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad()
    if kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise bad()
            value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise bad()
    for key, op in (("gt", lambda a, b: a > b), ("ge", lambda a, b: a >= b),
                    ("lt", lambda a, b: a < b), ("le", lambda a, b: a <= b)):
        bound = meta[key]
        if bound is not None and not op(value, bound):
            raise bad()
    return value


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


@dataclass
class DataSection:
    """``[data]``: where the tissue comes from."""

    adata_path: str = _opt("", "path", doc="the .h5ad file")
    layer: str = _opt(_keys.DEFAULT_LAYER, "str", doc="expression layer; \"\" = X")
    cluster_annot: str = _opt(_keys.DEFAULT_CLUSTER_ANNOT, "str", doc="obs column with cell types")
    species: str | None = _opt(None, "str", optional=True, choices=_keys.SPECIES,
                               doc="inferred from var_names when omitted")
    condition: str | None = _opt(None, "str", optional=True,
                                 doc="obs column: one model set per group, in conditions/<group>/")
    condition_group: str | None = _opt(None, "str", optional=True,
                                       doc="the group of [data].condition this folder trains (set by the run)")


@dataclass
class SpatialSection:
    """``[spatial]``: the received-ligand kernel (SPEC §3)."""

    radius: float = _opt(200.0, "float", gt=0)
    spatial_dim: int = _opt(32, "int", ge=8)
    contact_distance: float = _opt(50.0, "float", gt=0)
    weighted_ligand_scale_factor: float = _opt(1.0, "float", gt=0)
    kernel: str = _opt("gaussian", "str", choices=("gaussian", "truncated"))
    approx_above_cells: int = _opt(15000, "int", ge=1)
    per_ligand_radius: bool = _opt(False, "bool")


@dataclass
class GrnSection:
    """``[grn]``: the prior network and which modulator families to use (SPEC §4)."""

    network_data_dir: str | None = _opt(None, "path", optional=True)
    tf_ligand_cutoff: float = _opt(0.2, "float", ge=0)
    max_ligands: int | None = _opt(None, "int", optional=True, ge=1, aliases=("max_lr_pairs", "max_lr"))
    use_tf_modulators: bool = _opt(True, "bool")
    use_lr_modulators: bool = _opt(True, "bool")
    use_tfl_modulators: bool = _opt(True, "bool")
    extra_modulators: list[str] = _opt([], "list[str]")
    extra_modulators_file: str | None = _opt(None, "path", optional=True)
    extra_lr: list[str] = _opt([], "list[str]")
    extra_lr_file: str | None = _opt(None, "path", optional=True)
    tf_priors: str | None = _opt(None, "path", optional=True, aliases=("tf_priors_feather",),
                                 doc="table source,target,cell_type: the TFs allowed per target and cell type")


@dataclass
class LassoSection:
    """``[lasso]``: the sparse group lasso (SPEC §5.1)."""

    l1_reg: float = _opt(1e-5, "float", ge=0)
    group_reg: float = _opt(1e-5, "float", ge=0)
    group_reg_scaling: str = _opt("sqrt_group_size", "str",
                                  choices=("sqrt_group_size", "inverse_sqrt_group_size", "none"))
    n_iter: int = _opt(500, "int", ge=1)
    tol: float = _opt(1e-4, "float", gt=0)


@dataclass
class TrainingSection:
    """``[training]``: what to train."""

    mode: str = _opt("seed", "str", choices=("seed", "full"))
    epochs: int = _opt(10, "int", ge=0)
    learning_rate: float = _opt(1e-3, "float", gt=0)
    score_threshold: float = _opt(0.2, "float", le=1)
    genes: list[str] = _opt([], "list[str]")
    max_genes: int | None = _opt(None, "int", optional=True, ge=1)


@dataclass
class CnnSection:
    """``[cnn]``: the per-cell refinement network (full mode, SPEC §5.2)."""

    adam_beta_1: float = _opt(0.9, "float", ge=0, lt=1)
    adam_beta_2: float = _opt(0.999, "float", ge=0, lt=1)
    adam_epsilon: float = _opt(1e-5, "float", gt=0)
    weight_decay: float | None = _opt(None, "float", optional=True, ge=0)
    grad_clip_norm: float | None = _opt(None, "float", optional=True, gt=0)
    spatial_feature_radius: float = _opt(100.0, "float", gt=0)
    output_activation: str = _opt("sigmoidx2", "str", choices=("identity", "sigmoid", "tanh", "sigmoidx2"))
    batch_size: int = _opt(64, "int", ge=1, doc="cells per optimiser step")
    holdout_fraction: float = _opt(0.1, "float", ge=0, le=0.5, doc="cells of each cluster held out")
    patience: int = _opt(5, "int", ge=0, doc="epochs without held-out improvement before stopping; 0 = never")


@dataclass
class ExecutionSection:
    """``[execution]``: where and how the run executes."""

    n_parallel: int = _opt(1, "int", ge=1)
    output_dir: str = _opt("", "path")
    stale_lock_secs: float = _opt(0.0, "float", ge=0)
    random_seed: int = _opt(42, "int", ge=0)
    write_minimal_repro_h5ad: bool = _opt(False, "bool",
                                          doc="write spacetravlr_minimal_repro.h5ad (what perturbing needs)")
    scheduler: str = _opt("", "str", doc="Dask scheduler tcp://HOST:PORT or local:N; \"\" = no Dask")
    device: str = _opt("auto", "str", choices=("auto", "cpu", "cuda", "mps"), doc="CNN device (full mode)")


@dataclass
class PerturbationSection:
    """``[perturbation]``: in-silico perturbation (SPEC §7)."""

    beta_scale_factor: float = _opt(1.0, "float", ge=0)
    beta_cap: float | None = _opt(None, "float", optional=True, gt=0)
    n_propagation: int = _opt(4, "int", ge=1)
    ligand_grid_factor: float | None = _opt(None, "float", optional=True, gt=0)
    clip: str = _opt("zero_to_max", "str", choices=("zero_to_max", "observed_range"))
    cells_csv: str | None = _opt(None, "path", optional=True)
    cells_csv_column: str | None = _opt(None, "str", optional=True)


@dataclass
class ModelExportSection:
    """``[model_export]``: CNN weight export (full mode)."""

    save_cnn_weights: bool = _opt(False, "bool")
    compressed_npz: bool = _opt(True, "bool")
    output_subdir: str = _opt("CNN_weights", "str")


@dataclass
class CompatSection:
    """``[compat]``: ``mode = "python-reference"`` reproduces the Python reference 0.1.18."""

    mode: str = _opt("seed", "str", choices=("seed", "python-reference"))


SECTIONS: dict[str, type] = {
    "data": DataSection,
    "spatial": SpatialSection,
    "grn": GrnSection,
    "lasso": LassoSection,
    "training": TrainingSection,
    "cnn": CnnSection,
    "execution": ExecutionSection,
    "perturbation": PerturbationSection,
    "model_export": ModelExportSection,
    "compat": CompatSection,
}

#: keys the python-reference compat mode sets unless given explicitly
REFERENCE_COMPAT: dict[str, Any] = {
    "spatial.kernel": "truncated",
    "spatial.per_ligand_radius": True,
    "perturbation.clip": "observed_range",
    "lasso.group_reg_scaling": "inverse_sqrt_group_size",
    "training.score_threshold": 0.15,  # the reference's hard-coded R² gate
}

#: path-valued keys resolved against the TOML file's folder
_PATH_KEYS = ("data.adata_path", "grn.network_data_dir", "grn.extra_modulators_file",
              "grn.extra_lr_file", "grn.tf_priors", "perturbation.cells_csv")


def _fields(section_cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(section_cls)}


def _field_name(section_cls: type, key: str) -> str | None:
    """The field ``key`` names in ``section_cls`` (itself or through an alias), or None."""
    flds = _fields(section_cls)
    if key in flds:
        return key
    return next((n for n, f in flds.items() if key in f.metadata.get("aliases", ())), None)


field_name = _field_name


def config_keys() -> list[str]:
    """Every ``section.key`` of the schema, in schema order."""
    return [f"{s}.{k}" for s, cls in SECTIONS.items() for k in _fields(cls)]


@dataclass
class SpaceshipConfig:
    """The whole configuration; one attribute per TOML section.

    Attributes
    ----------
    source:
        The TOML file it was read from (``None`` when built in code). Relative paths in the file are
        resolved against its folder.
    explicit:
        ``section.key`` names set explicitly (in the file or by an override). The compat switch does
        not change explicitly set keys.
    notes:
        One line per key of the Rust seed that was read but is not implemented, saying what happens
        instead (see :mod:`spacetravlr_py.seedkeys`); each is also logged once as a warning.
    """

    data: DataSection = field(default_factory=DataSection)
    spatial: SpatialSection = field(default_factory=SpatialSection)
    grn: GrnSection = field(default_factory=GrnSection)
    lasso: LassoSection = field(default_factory=LassoSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    cnn: CnnSection = field(default_factory=CnnSection)
    execution: ExecutionSection = field(default_factory=ExecutionSection)
    perturbation: PerturbationSection = field(default_factory=PerturbationSection)
    model_export: ModelExportSection = field(default_factory=ModelExportSection)
    compat: CompatSection = field(default_factory=CompatSection)
    source: Path | None = field(default=None, compare=False, repr=False)
    explicit: set[str] = field(default_factory=set, compare=False, repr=False)
    notes: list[str] = field(default_factory=list, compare=False, repr=False)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str | Path | None = None) -> SpaceshipConfig:
        """Build from a nested mapping as read from TOML; validates every key."""
        label = str(source) if source is not None else "<config>"
        cfg = cls(source=Path(source).resolve() if source is not None else None)
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{label}: expected a table of sections")
        from .seedkeys import absorb_seed_keys

        raw, cfg.notes = absorb_seed_keys(raw, label)  # the Rust seed's keys: one warning line each
        for note in cfg.notes:
            log.warning("%s", note)
        for sec_name, sec_raw in raw.items():
            if sec_name not in SECTIONS and not isinstance(sec_raw, Mapping):
                # a key written above every [section] header
                homes = [s for s, c in SECTIONS.items() if _field_name(c, sec_name) is not None]
                where = f"; put it under [{homes[0]}]" if homes else ""
                raise ConfigError(f"{label}: key {sec_name!r} is outside any [section]{where}")
            if sec_name not in SECTIONS:
                raise ConfigError(f"{label}: unknown section [{sec_name}]"
                                  + near_matches(sec_name, SECTIONS) + "; known sections: "
                                  + ", ".join(f"[{s}]" for s in SECTIONS))
            if not isinstance(sec_raw, Mapping):
                raise ConfigError(f"{label}: [{sec_name}] must be a table, got {_fmt_value(sec_raw)}")
            seen: dict[str, str] = {}
            for key, value in sec_raw.items():
                name = _field_name(SECTIONS[sec_name], key)
                if name is not None and name in seen:
                    raise ConfigError(f"{label}: [{sec_name}] sets both {seen[name]} and {key} "
                                      f"(aliases of one key); keep one")
                if name is not None:
                    seen[name] = key
                cfg._set(sec_name, key, value, where=f"{label}: [{sec_name}].{key}")
        cfg._apply_compat()
        if cfg.source is not None:
            cfg._resolve_paths(cfg.source.parent)
        return cfg

    @classmethod
    def from_toml(cls, path: str | Path) -> SpaceshipConfig:
        """Read and validate a ``spaceship_config.toml`` (or a repro TOML)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found; check the path given to -c/--config") from None
        except IsADirectoryError:
            raise ConfigError(f"{p}: is a directory, expected a .toml file") from None
        except (OSError, UnicodeDecodeError, ValueError) as e:  # ValueError: NUL in the path
            raise ConfigError(f"{p}: cannot read config file ({e.__class__.__name__}: {e})") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML ({e})") from None
        return cls.from_dict(raw, source=p)

    def _set(self, sec_name: str, key: str, value: Any, *, where: str) -> None:
        sec = getattr(self, sec_name)
        flds = _fields(type(sec))
        name = _field_name(type(sec), key)
        if name is None:
            raise ConfigError(f"{where}: unknown key" + near_matches(key, flds)
                              + f"; keys of [{sec_name}]: " + ", ".join(flds))
        setattr(sec, name, _coerce(value, flds[name].metadata, where))
        self.explicit.add(f"{sec_name}.{name}")

    def _apply_compat(self) -> None:
        # keys not set explicitly follow the mode: the reference's values, or the schema defaults
        # (so that switching the mode back by an override also switches them back)
        for dotted, value in REFERENCE_COMPAT.items():
            if dotted not in self.explicit:
                s, k = dotted.split(".")
                sec = getattr(self, s)
                if not self.reference_compat:
                    value = _fields(type(sec))[k].default
                setattr(sec, k, value)

    def _resolve_paths(self, base: Path) -> None:
        for dotted in _PATH_KEYS:
            s, k = dotted.split(".")
            v = getattr(getattr(self, s), k)
            if v:
                setattr(getattr(self, s), k, str((base / os.path.expanduser(v)).resolve()))
        od = self.execution.output_dir
        self.execution.output_dir = str((base / os.path.expanduser(od)).resolve()) if od else str(base)

    def with_overrides(self, overrides: Mapping[str, Any], *, source: str = "command line") -> SpaceshipConfig:
        """Return a copy with ``{"section.key": value}`` applied (``None`` values are skipped).

        Values are validated like TOML values; errors name ``source`` (e.g. the flag). Relative paths
        given here are command-line paths: they resolve against the current directory.
        """
        new = copy.deepcopy(self)
        for dotted, value in overrides.items():
            if value is None:
                continue
            if "." not in dotted:
                raise ConfigError(f"{source}: override key {dotted!r} must look like section.key")
            s, k = dotted.split(".", 1)
            if s not in SECTIONS:
                raise ConfigError(f"{source}: unknown section [{s}]" + near_matches(s, SECTIONS))
            new._set(s, k, value, where=f"{source}: [{s}].{k}")
            name = _field_name(SECTIONS[s], k)
            assert name is not None  # _set validated it
            if _fields(SECTIONS[s])[name].metadata["kind"] == "path" and value:
                setattr(getattr(new, s), name, str(Path(os.path.expanduser(value)).resolve()))
        new._apply_compat()
        return new

    # -- output ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested mapping of every key (``None`` values omitted, as TOML has no null)."""
        out: dict[str, dict[str, Any]] = {}
        for s in SECTIONS:
            sec = getattr(self, s)
            out[s] = {k: copy.copy(getattr(sec, k)) for k in _fields(type(sec))
                      if getattr(sec, k) is not None}
        return out

    def to_toml(self) -> str:
        """The complete configuration as TOML text (every section, every non-null key)."""
        import tomli_w

        header = ("# SpaceTravLR configuration (complete: every key of every section).\n"
                  "# Keys omitted here are unset (no value), e.g. [perturbation].beta_cap.\n")
        return header + tomli_w.dumps(self.to_dict())

    def dump_toml(self, path: str | Path) -> Path:
        """Atomically write :meth:`to_toml` to ``path``."""
        from .io.atomic import atomic_write_text

        return atomic_write_text(path, self.to_toml())

    def get(self, dotted: str) -> Any:
        """Value of ``section.key``."""
        s, k = dotted.split(".", 1)
        return getattr(getattr(self, s), k)

    @property
    def reference_compat(self) -> bool:
        """True under ``[compat] mode = "python-reference"``."""
        return self.compat.mode == "python-reference"


def describe_schema() -> str:
    """Every key with its default and expected form, as a valid TOML file (unset keys commented out)."""
    lines: list[str] = ["# spaceship_config.toml: every key with its default; unset keys are commented out"]
    for s, cls in SECTIONS.items():
        lines.append(f"\n[{s}]")
        for k, f in _fields(cls).items():
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            alias = f" (alias: {', '.join(f.metadata['aliases'])})" if f.metadata["aliases"] else ""
            doc = f" {f.metadata['doc']};" if f.metadata.get("doc") else ""
            if default is None:
                lines.append(f"# {k} =   #{doc} unset by default; {_expected(f.metadata)}{alias}")
            else:
                value = "[]" if default == [] else _fmt_value(default)
                lines.append(f"{k} = {value}   #{doc} {_expected(f.metadata)}{alias}")
    return "\n".join(lines) + "\n"

