"""``spacetravlr`` training: flags → configuration (a config file, or a joined run) → :func:`train`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from .. import _keys
from ..config import SpaceshipConfig
from ..errors import ConfigError, InputError


def _join_config(join_dir: Path, overrides: dict[str, Any]) -> tuple[SpaceshipConfig, list[str]]:
    """The joined run's configuration; flags may only change how this process executes."""
    repro = join_dir / _keys.REPRO_TOML
    if not join_dir.is_dir():
        raise InputError(f"--join-output-dir {join_dir}: not a directory")
    if not repro.exists():
        raise InputError(f"--join-output-dir {join_dir}: no {_keys.REPRO_TOML} there; start the run in that "
                         "folder first (without --join-output-dir)")
    cfg = SpaceshipConfig.from_toml(repro)
    warnings: list[str] = []
    allowed = {"execution.n_parallel", "execution.stale_lock_secs"}
    ignored = {"training.genes", "training.max_genes"}
    # the folder may be mounted elsewhere on this host than where the run started
    apply: dict[str, Any] = {"execution.output_dir": str(join_dir)}
    for k, v in overrides.items():
        if v is None:
            continue
        if k in allowed:
            apply[k] = v
        elif k == "execution.output_dir":
            if Path(v).expanduser().resolve() != join_dir:
                raise InputError(f"--output-dir {v} and --join-output-dir {join_dir} name different folders; "
                                 "drop --output-dir to join")
        elif k in ignored:
            warnings.append(f"note: --{k.split('.')[1].replace('_', '-')} is ignored when joining: the queue "
                            f"comes from {repro}")
        elif k == "data.adata_path":
            if Path(v).resolve() != Path(cfg.data.adata_path).resolve():
                raise InputError(f"--h5ad {v}: the run in {join_dir} trains {cfg.data.adata_path}; "
                                 "drop --h5ad to join it")
        elif cfg.get(k) != SpaceshipConfig().with_overrides({k: v}).get(k):
            raise ConfigError(f"--join-output-dir: {k} = {v!r} conflicts with the joined run's "
                              f"{k} = {cfg.get(k)!r}; drop the flag to join")
    cfg = cfg.with_overrides(apply, source="command line")
    return cfg, warnings


def config_from_args(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[SpaceshipConfig, list[str]]:
    """Config file (``-c``) or joined run (``--join-output-dir``), then the flags; plus notes to print."""
    if args.join_output_dir:
        cfg, notes = _join_config(Path(args.join_output_dir).expanduser().resolve(), overrides)
        if args.config:
            notes.insert(0, f"note: -c {args.config} is ignored when joining: the configuration comes from "
                         f"{Path(args.join_output_dir) / _keys.REPRO_TOML}")
        return cfg, notes
    cfg = SpaceshipConfig.from_toml(args.config) if args.config else SpaceshipConfig()
    return cfg.with_overrides(overrides, source="command line"), []


def train_main(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """``spacetravlr`` main action; returns the exit code (130 when interrupted, 1 when genes failed)."""
    from ..training import train
    from ..training.reporters import ConsoleReporter
    from ..training.results import FAILED

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    cfg, notes = config_from_args(args, overrides)
    for n in notes:
        print(n, file=sys.stderr)
    if not cfg.data.adata_path:
        raise InputError("no dataset: pass --h5ad PATH or -c spaceship_config.toml with [data].adata_path "
                         "(try `spacetravlr demo` for a synthetic example)")
    res = train(cfg, reporter=ConsoleReporter(plain=args.plain, quiet=args.quiet))
    if res.interrupted:
        return 130
    return 1 if res.counts[FAILED] else 0
