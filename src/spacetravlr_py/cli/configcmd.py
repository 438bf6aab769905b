"""``spacetravlr config``: print the configuration schema, a resolved configuration, or the example files."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ._common import EXIT_OK, new_parser


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("spacetravlr config", "Print every configuration key with its default and expected form "
                   "(schema), the complete resolved configuration of a TOML file (show), or the example files "
                   "shipped with the package (examples).",
                   "examples:\n  spacetravlr config schema > spaceship_config.toml\n"
                   "  spacetravlr config show -c spaceship_config.toml\n"
                   "  spacetravlr config examples --copy my_project/  # example config, perturbation TOML, TF prior")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("schema", help="every key, its default and expected form")
    show = sub.add_parser("show", help="the resolved configuration (defaults filled, paths absolute)")
    show.add_argument("-c", "--config", required=True, metavar="TOML")
    ex = sub.add_parser("examples", help="list (or copy) the example files shipped with the package")
    ex.add_argument("--copy", metavar="DIR", help="copy them into DIR (existing files are not overwritten)")
    return p


def example_files() -> list[Path]:
    """The example files inside the installed package (``spacetravlr_py/data/examples``)."""
    import spacetravlr_py

    folder = Path(spacetravlr_py.__file__).resolve().parent / "data" / "examples"
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def _examples(copy: str | None) -> int:
    import shutil

    files = example_files()
    if not copy:
        for f in files:
            print(f)
        return EXIT_OK
    out = Path(copy)
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        dest = out / f.name
        if dest.exists():
            print(f"kept {dest} (exists)")
        else:
            shutil.copyfile(f, dest)
            print(f"wrote {dest}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from ..config import SpaceshipConfig, describe_schema

    if a.action == "examples":
        return _examples(a.copy)
    if a.action == "schema":
        print(describe_schema())
    else:
        print(SpaceshipConfig.from_toml(a.config).to_toml(), end="")
    return EXIT_OK
