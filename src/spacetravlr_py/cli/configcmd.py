"""``spacetravlr config``: print the configuration schema, or a resolved configuration."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._common import EXIT_OK, new_parser


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("spacetravlr config", "Print every configuration key with its default and expected form "
                   "(schema), or the complete resolved configuration of a TOML file (show).",
                   "examples:\n  spacetravlr config schema > spaceship_config.toml\n"
                   "  spacetravlr config show -c spaceship_config.toml")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("schema", help="every key, its default and expected form")
    show = sub.add_parser("show", help="the resolved configuration (defaults filled, paths absolute)")
    show.add_argument("-c", "--config", required=True, metavar="TOML")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from ..config import SpaceshipConfig, describe_schema

    if a.action == "schema":
        print(describe_schema())
    else:
        print(SpaceshipConfig.from_toml(a.config).to_toml(), end="")
    return EXIT_OK
