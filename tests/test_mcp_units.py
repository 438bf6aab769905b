"""Pieces of the MCP server without a server: the summaries on hand-computed inputs, scope arguments,
argument-error lines, the engine's data roots, and the program's flags (lazy imports, one-line errors)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spacetravlr_py.mcp import summaries as sm
from spacetravlr_py.mcp.errors import ToolInputError, validation_line
from spacetravlr_py.mcp.params import perturb_body, scope_body

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.parametrize("dx,dy,name", [(1, 0, "east"), (0, 1, "north"), (-1, 0, "west"), (0, -1, "south"),
                                        (1, 1, "north-east"), (-1, -1, "south-west"), (1, 0.3, "east"),
                                        (-0.2, 1, "north"), (1, -1, "south-east"), (-1, 1, "north-west")])
def test_compass(dx: float, dy: float, name: str) -> None:
    assert sm.compass(dx, dy).split(" ")[0] == name


def test_field_directions_on_planted_vectors() -> None:
    # A at the origin all pointing +x (towards B at x = 10); C pointing up and down in equal numbers
    E = np.array([[0, 0], [0, 1], [10, 0], [10, 1], [0, 10], [0, 11]], float)
    V = np.array([[1, 0], [1, 0], [0, 0.5], [0, 0.5], [0, 1], [0, -1]], float)
    groups = {"A": np.array([1, 1, 0, 0, 0, 0], bool), "B": np.array([0, 0, 1, 1, 0, 0], bool),
              "C": np.array([0, 0, 0, 0, 1, 1], bool)}
    rows = {r["group"]: r for r in sm.field_directions(E, V, groups)}
    a = rows["A"]
    assert (a["mean_u"], a["mean_v"], a["net_shift"], a["coherence"]) == (1.0, 0.0, 1.0, 1.0)
    assert a["direction"].startswith("east") and a["towards"] == "B" and a["towards_cos"] == pytest.approx(1.0)
    b = rows["B"]  # centroid (10, .5); +y points to neither A (cos ≈ 0) nor C (cos = 9.5/√(100+90.25) < .7)
    assert b["direction"].startswith("north") and b["net_shift"] == 0.5
    assert b["towards"] == "C" and b["towards_cos"] == pytest.approx(10 / np.hypot(10, 10))
    c = rows["C"]
    assert c["net_shift"] == 0.0 and c["coherence"] == 0.0 and c["direction"] == "none" and c["towards"] is None
    assert [r["group"] for r in sm.field_directions(E, V, groups)] == ["A", "B", "C"]  # by net shift
    text = sm.field_text(list(rows.values()), "umap")
    assert "towards B" in text and "towards C" in text


def test_strongest_bins_and_group_effects() -> None:
    field = {"nx": 2, "ny": 2, "grid_x": [0.0, 1.0], "grid_y": [5.0, 6.0], "u": [0, 3, 0, -1], "v": [0, 4, 2, 0],
             "mask": [True, True, False, True], "counts": [1, 7, 2, 3]}
    bins = sm.strongest_bins(field, 5)
    assert [(b["x"], b["y"], b["length"], b["n_cells"]) for b in bins] == [(1.0, 5.0, 5.0, 7), (1.0, 6.0, 1.0, 3)]
    d = {"G1": np.array([1.0, -1.0, 2.0, 0.0]), "G2": np.array([0.0, 0.0, -3.0, -1.0]), "G3": np.zeros(4)}
    out = sm.group_effects(d, {"x": np.array([1, 1, 0, 0], bool), "y": np.array([0, 0, 1, 1], bool)}, 5)
    assert out["x"] == [{"gene": "G1", "mean_delta": 0.0, "mean_abs_delta": 1.0}]
    assert [r["gene"] for r in out["y"]] == ["G2", "G1"] and out["y"][0]["mean_delta"] == -2.0


def test_screen_row_impact_is_the_size_weighted_cluster_mean() -> None:
    s = {"desired_expr": 0.0, "max_abs_delta": 2.0, "n_genes_changed": 5,
         "cluster_mean_abs_delta": [{"n_cells": 2, "mean_abs_delta": 1.0}, {"n_cells": 6, "mean_abs_delta": 0.5}],
         "top_affected_genes": [{"gene": "A", "mean_abs_delta": 0.3, "mean_delta": -0.1}]}
    row = sm.screen_row("G", s)
    assert row["impact"] == pytest.approx((2 * 1.0 + 6 * 0.5) / 8) and row["n_genes_changed"] == 4
    assert sm.screen_row("G", {**s, "max_abs_delta": 0.0})["n_genes_changed"] == 5
    ranked = sm.rank_screen([{"gene": "b", "impact": 1.0}, {"gene": "a", "impact": 1.0}, {"gene": "c", "impact": 2.0}])
    assert [(r["rank"], r["gene"]) for r in ranked] == [(1, "c"), (2, "a"), (3, "b")]


def test_cluster_cell_types_take_the_majority_label() -> None:
    clusters = np.array([0, 0, 0, 1, 1, 2])
    codes = np.array([1, 1, 0, 65535, 0, 65535], np.uint16)
    assert sm.cluster_cell_types(clusters, codes, ["A", "B"], 3) == ["B", "A", None]
    assert sm.cluster_cell_types(clusters, None, [], 3) == [None, None, None]


def test_scope_arguments() -> None:
    assert scope_body("all", None, None, None) == {"type": "all"}
    assert scope_body("cell_types", ["T"], None, None) == {"type": "cell_types", "names": ["T"]}
    assert scope_body("clusters", None, [0, 2], None) == {"type": "clusters", "cluster_ids": [0, 2]}
    assert scope_body("cells", None, None, [5]) == {"type": "indices", "indices": [5]}
    with pytest.raises(ToolInputError, match=r"^cell_types: scope 'cell_types' needs a non-empty cell_types"):
        scope_body("cell_types", [], None, None)
    with pytest.raises(ToolInputError, match=r"^clusters: given with scope 'all'; set scope to 'clusters'"):
        scope_body("all", None, [1], None)
    with pytest.raises(ToolInputError, match=r"^cell_indices: .* set scope to 'cells'"):
        scope_body("clusters", None, [1], [3])
    assert perturb_body(["A", "B", "A"], 0.0, None, {"type": "all"}, 3)["with_genes"] == ["B"]


def test_validation_line_names_field_value_and_fix() -> None:
    errs = [{"loc": ("n_propagation",), "msg": "Input should be less than or equal to 32", "type": "less_than_equal",
             "input": 99}, {"loc": ("genes",), "msg": "Field required", "type": "missing", "input": {}}]
    line = validation_line("run_perturbation", errs, ["genes", "n_propagation"])
    assert line == ("run_perturbation: n_propagation: Input should be less than or equal to 32 (got 99) — use a "
                    "smaller value; genes: Field required — add it; fields: genes, n_propagation")


def test_engine_roots_never_include_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spacetravlr_py.mcp.engine import engine_roots

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    h5 = data / "x.h5ad"
    h5.write_text("")
    assert engine_roots(None, str(h5), None, []) == [data.resolve()]
    assert engine_roots(None, None, None, [str(tmp_path / "r")]) == [(tmp_path / "r").resolve()]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    code = ("import sys\nfrom spacetravlr_py.cli.main import main\ntry:\n    rc = main(sys.argv[1:])\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "heavy = [m for m in ('mcp', 'numpy', 'fastapi', 'matplotlib') if m in sys.modules]\n"
            "print('HEAVY', heavy, file=sys.stderr)\nsys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"})


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    r = _run("mcp", "--help")
    assert r.returncode == 0 and "--api-base" in r.stdout and "docs/mcp.md" in r.stdout
    assert "HEAVY []" in r.stderr


@pytest.mark.parametrize("args,needle", [
    ((), "give --run-toml"),
    (("--api-base", "http://127.0.0.1:1", "--run-toml", "x.toml"), "drop them with --api-base"),
    (("--api-base", "ftp://host"), "expected a URL"),
    (("--run-toml", "/nonexistent/run.toml"), "not found"),
    (("--http-port", "0", "--data-root", "/tmp"), "--http-port must be 1..65535"),
    (("--threads", "0", "--data-root", "/tmp"), "--threads must be >= 1"),
])
def test_bad_flags_are_one_line(args: tuple[str, ...], needle: str) -> None:
    r = _run("mcp", *args)
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("HEAVY")]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("spacetravlr mcp: error: ")
    assert needle in lines[0]
