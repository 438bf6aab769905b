"""``spacetravlr demo`` ends with the one command that opens its run in the viewer, and that command works."""

from __future__ import annotations

import shlex

import pytest

from viewer_support import cli_server, wait_ready

pytestmark = pytest.mark.slow


def test_demo_prints_the_viewer_command(tmp_path, capsys) -> None:
    from spacetravlr_py.cli.main import main

    assert main(["demo", "--out", str(tmp_path / "demo"), "--cells", "400"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("explore it in the browser: spatial_viewer --run-toml ")
    args = shlex.split(last.split(": ", 1)[1])
    assert args[0] == "spatial_viewer" and args[-1] == "--open"
    with cli_server(*args[1:-1]) as (base, _, _):
        m = wait_ready(base)
        assert m["status"] == "ready" and m["perturb_ready"] and m["n_obs"] == 400
