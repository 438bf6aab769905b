"""The viewer's pure parts without a server: payload builders (bytes, dtypes, hand-computed JSON), the
cell inspector, the data-root guard and the job manager."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from spacetravlr_py.cli.viewer import is_loopback
from spacetravlr_py.viewer import payloads as pl
from spacetravlr_py.viewer._errors import ApiError
from spacetravlr_py.viewer.inspector import CellBetas, ModulatorSet, cell_context, spatial_neighbors
from spacetravlr_py.viewer.jobs import Job, JobCancelled, JobManager
from spacetravlr_py.viewer.security import PathGuard, start_roots


def test_to_bytes_is_little_endian_with_headers() -> None:
    body, h = pl.to_bytes(np.array([[1.5, -2.0], [3.0, 4.25]]), pl.F32)
    assert body == np.array([1.5, -2.0, 3.0, 4.25], dtype="<f4").tobytes()
    assert body[:4] == b"\x00\x00\xc0\x3f"  # 1.5 as little-endian IEEE-754 single
    assert h == {"X-Dtype": "float32", "X-Length": "4", "X-Shape": "2,2"}
    body, h = pl.to_bytes(np.array([1, 258]), pl.U16)
    assert body == b"\x01\x00\x02\x01" and h["X-Dtype"] == "uint16"
    body, h = pl.to_bytes(np.array([7]), pl.U32)
    assert body == b"\x07\x00\x00\x00" and h["X-Shape"] == "1"


def test_cell_type_encoding_and_relabel() -> None:
    cats, codes = pl.cell_type_encoding(["T", "B", None, " T ", "", float("nan"), "nan", "Mac"])
    assert cats == ["B", "Mac", "T"]
    assert codes.dtype == np.uint16 and codes.tolist() == [2, 0, 65535, 2, 65535, 65535, 65535, 1]
    cats, codes = pl.relabel_clusters(["0", "1", "2"], np.array([2, 0, 1, 1]), {0: "B", 2: "B"})
    assert cats == ["1", "B"] and codes.tolist() == [1, 1, 0, 0]


def test_genes_with_prefix_order() -> None:
    names = ["Cd3e", "CD4", "Actb", "cd8a", "Cd19", "Gapdh"]
    assert pl.genes_with_prefix(names, "Cd", 10) == ["Cd3e", "Cd19", "CD4", "cd8a"]
    assert pl.genes_with_prefix(names, "Cd", 1) == ["Cd3e"]
    assert pl.genes_with_prefix(names, "", 2) == ["Cd3e", "CD4"]
    assert pl.genes_with_prefix(names, "zz", 5) == []


def test_top_coefficients_hand_computed() -> None:
    coefs = np.array([[1.0, -4.0, 0.0], [3.0, 2.0, 0.5]])  # rows r0, r1; modulators A, L$R, L#A
    rows = np.array([0, 0, 1, -1])  # the last cell has no row (zero betas)
    top = pl.top_coefficients(coefs, ["A", "L$R", "L#A"], rows, 2)
    # A: values 1, 1, 3, 0 → mean 1.25, mean|.| 1.25; L$R: -4, -4, 2, 0 → mean -1.5, mean|.| 2.5
    assert [t["column"] for t in top] == ["beta_L$R", "beta_A"]
    assert top[0] == {"column": "beta_L$R", "modulator": "L$R", "family": "lr", "mean": -1.5, "mean_abs": 2.5}
    assert top[1]["mean"] == 1.25 and top[1]["mean_abs"] == 1.25 and top[1]["family"] == "tf"
    assert pl.top_coefficients(coefs, ["A", "L$R", "L#A"], np.zeros(0, np.int64), 5) == []


def test_columns_and_cluster_means() -> None:
    assert pl.betadata_columns(["A", "L$R"]) == ["beta0", "beta_A", "beta_L$R"]
    assert pl.resolve_column("beta_L$R", ["A", "L$R"]) == 1
    assert pl.resolve_column("A", ["A", "L$R"]) == 0
    assert pl.resolve_column("beta_0", ["A"]) == -1 and pl.resolve_column("beta0", ["A"]) == -1
    assert pl.resolve_column("beta_B", ["A"]) is None
    cols = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]])
    means, counts = pl.cluster_means(cols, np.array([0, 0, 2]), 3)
    assert counts.tolist() == [2, 0, 1]
    assert means.tolist() == [[2.0, 0.0, 5.0], [1.0, 0.0, 4.0]]


def test_export_stem_and_digest() -> None:
    assert pl.export_stem("Foxo1", 0.0, "all cells", 4) == "Foxo1_ko_all_4steps"
    assert pl.export_stem("Foxo1", 2.5, "cell types T cells, B/x", 3) == "Foxo1_2.5_cell-types-T-cells-B-x_3steps"
    assert "/" not in pl.export_stem("a/../b", 1, "../..", 1)
    m = np.zeros(100, bool)
    m[3] = True
    assert pl.mask_digest(m) != pl.mask_digest(np.zeros(100, bool)) and len(pl.mask_digest(m)) == 16


def test_field_payload_masks_to_zero() -> None:
    from spacetravlr_py.transitions.field import GridField

    g = GridField(x=np.array([0.5, 1.5]), y=np.array([0.5]), u=np.array([[np.nan, 2.0]]),
                  v=np.array([[np.nan, -1.0]]), counts=np.array([[0, 5]]), mask=np.array([[False, True]]))
    js = pl.field_payload(g, np.array([[0.1, np.nan], [0.2, 0.3]]), {"k": 1})
    assert js["nx"] == 2 and js["ny"] == 1 and js["u"] == [0.0, 2.0] and js["v"] == [0.0, -1.0]
    assert js["mask"] == [False, True] and js["counts"] == [0, 5]
    assert js["cell_v"] == [0.0, pytest.approx(0.3)]


# ---------------------------------------------------------------------------------------------
# inspector
# ---------------------------------------------------------------------------------------------


def line_cells() -> dict:
    # cells on a line at x = 0, 1, 3, 6; genes L (ligand), R (receptor), T (tf), Y (target)
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [6.0, 0.0]])
    X = np.array([[0.0, 4.0, 1.0, 2.0],   # cell 0: receptor 4, tf 1
                  [9.0, 0.0, 0.0, 0.0],   # cell 1: ligand 9
                  [1.0, 1.0, 5.0, 0.0],   # cell 2: ligand 1, receptor 1, tf 5
                  [4.0, 0.0, 0.0, 0.0]])  # cell 3: ligand 4
    return {"coords": coords, "X": X, "gi": {"L": 0, "R": 1, "T": 2, "Y": 3}}


def test_spatial_neighbors_knn_and_radius() -> None:
    from scipy.spatial import cKDTree

    c = line_cells()["coords"]
    tree = cKDTree(c)
    assert spatial_neighbors(tree, c, 0, k=2) == [(1, 1.0), (2, 9.0)]
    assert spatial_neighbors(tree, c, 2, k=3) == [(1, 4.0), (0, 9.0), (3, 9.0)]  # ties by index
    assert spatial_neighbors(tree, c, 0, radius=3.0) == [(1, 1.0), (2, 9.0)]
    assert spatial_neighbors(tree, c, 0, radius=0.5) == []


def test_cell_context_incoming_hand_computed() -> None:
    d = line_cells()
    mods = ModulatorSet.from_names(["T", "L$R", "L#T"], "betadata")
    betas = CellBetas(["T", "L$R", "L#T"], rows=np.array([0, 0, 1, 1]), intercept=np.array([0.5, 0.7]),
                      coefs=np.array([[0.2, -1.5, 0.0], [0.1, 0.3, 0.4]]))
    js = cell_context(cell=0, focus_gene="Y", X=d["X"], gi=d["gi"], obs_names=np.array(["a", "b", "c", "d"]),
                      coords=d["coords"], clusters=np.array([0, 0, 1, 1]), cluster_labels=["k0", "k1"],
                      cell_type="k0", neighbors=[(1, 1.0), (2, 9.0), (3, 36.0)], mods=mods, betas=betas)
    assert js["focus_expr"] == 2.0 and js["cluster_label"] == "k0" and js["intercept"] == 0.5
    assert js["betas"] == [{"modulator": "L$R", "family": "lr", "beta": -1.5},
                           {"modulator": "T", "family": "tf", "beta": 0.2}]
    assert js["modulators"] == {"tfs": ["T"], "lr_pairs": [["L", "R"]], "tfl_pairs": [["L", "T"]],
                                "ligands": ["L"], "receptors": ["R"]}
    assert js["tf_exprs"] == [{"gene": "T", "expr": 1.0}] and js["ligand_exprs"] == []
    n1, n2, n3 = js["neighbors"]
    # neighbour 1 sends L = 9 to cell 0's R = 4: support √36 = 6; cell 0's beta of L$R; linked tf T (expr 1 in cell 0)
    assert n1["edges"] == [{"ligand": "L", "receptor": "R", "ligand_expr": 9.0, "receptor_expr": 4.0,
                            "support_score": 6.0, "beta": -1.5, "linked_tf": "T", "linked_tf_expr": 1.0}]
    assert n1["max_support_score"] == 6.0 and n1["distance"] == 1.0
    assert n2["edges"][0]["support_score"] == 2.0 and n3["edges"][0]["support_score"] == 4.0
    # outgoing: cell 0 expresses no ligand → no edges
    out = cell_context(cell=0, focus_gene="Y", X=d["X"], gi=d["gi"], obs_names=np.array(["a", "b", "c", "d"]),
                       coords=d["coords"], clusters=np.array([0, 0, 1, 1]), cluster_labels=["k0", "k1"],
                       cell_type=None, neighbors=[(1, 1.0), (2, 9.0)], mods=mods, betas=betas, direction="outgoing")
    assert all(n["edges"] == [] and n["max_support_score"] is None for n in out["neighbors"])
    # outgoing from cell 2 (L = 1) to cell 0 (R = 4): the receiver's (cell 0) beta
    out = cell_context(cell=2, focus_gene="Y", X=d["X"], gi=d["gi"], obs_names=np.array(["a", "b", "c", "d"]),
                       coords=d["coords"], clusters=np.array([0, 0, 1, 1]), cluster_labels=["k0", "k1"],
                       cell_type=None, neighbors=[(0, 9.0)], mods=mods, betas=betas, direction="outgoing")
    e = out["neighbors"][0]["edges"][0]
    assert (e["ligand_expr"], e["receptor_expr"], e["support_score"], e["beta"]) == (1.0, 4.0, 2.0, -1.5)


# ---------------------------------------------------------------------------------------------
# data roots
# ---------------------------------------------------------------------------------------------


def test_path_guard(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f.h5ad").write_text("x")
    (tmp_path / "out.h5ad").write_text("x")
    (root / "esc.h5ad").symlink_to(tmp_path / "out.h5ad")
    (root / "ok.h5ad").symlink_to(root / "sub" / "f.h5ad")
    g = PathGuard([root])
    assert g.check(str(root / "sub" / "f.h5ad"), what="p") == (root / "sub" / "f.h5ad").resolve()
    assert g.check(str(root / "ok.h5ad"), what="p") == (root / "sub" / "f.h5ad").resolve()  # inside: fine
    for bad, status in [(str(root / ".." / "out.h5ad"), 403), (str(root / "esc.h5ad"), 403), ("/etc/passwd", 403),
                        (str(root / "nope"), 404), ("a\x00b", 400), ("", 400), ("x" * 5000, 400),
                        (str(root / "sub"), 400)]:
        with pytest.raises(ApiError) as e:
            g.check(bad, what="p")
        assert e.value.status == status, bad
    assert g.check(str(root / "sub"), what="d", kind="dir").is_dir()


def test_start_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.h5ad").write_text("x")
    roots = start_roots(str(tmp_path / "a" / "x.h5ad"), None, None)
    assert roots == [(tmp_path / "a").resolve(), tmp_path.resolve()]
    extra = tmp_path / "extra"
    extra.mkdir()
    roots = start_roots(str(tmp_path / "a" / "x.h5ad"), None, None, [str(extra)])
    assert roots == [extra.resolve(), (tmp_path / "a").resolve()]  # no working directory with --data-root


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.5.0.1") and is_loopback("::1")
    assert is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


# ---------------------------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------------------------


def test_job_manager_runs_in_order_and_cancels() -> None:
    jm = JobManager(max_waiting=2)
    gate = threading.Event()
    order: list[str] = []

    def blocker(job: Job) -> str:
        for i in range(10_000):
            job.tick(i, 10_000, "blocking")
            if gate.wait(0.005):
                break
        order.append("a")
        return "a"

    def quick(name: str):
        def fn(job: Job) -> str:
            job.tick(1, 1)
            order.append(name)
            return name
        return fn

    try:
        ja, fa = jm.submit("preview", blocker)
        t0 = time.time()
        while jm.progress()["job"] is None:
            assert time.time() - t0 < 10
            time.sleep(0.005)
        _jb, fb = jm.submit("summary", quick("b"))
        jc, fc = jm.submit("summary", quick("c"))
        with pytest.raises(ApiError) as e:
            jm.submit("summary", quick("d"))
        assert e.value.status == 429
        p = jm.progress()
        assert p["active"] and p["queued"] == 2 and p["job"]["id"] == ja.id and p["job"]["message"] == "blocking"
        assert jm.cancel(jc.id) == [jc.id]
        gate.set()
        assert fa.result(10) == "a" and fb.result(10) == "b"
        with pytest.raises(JobCancelled):
            fc.result(10)
        assert order == ["a", "b"] and jc.state == "cancelled" and ja.state == "done"
        # cancelling a running job stops it at its next tick
        gate.clear()
        jd, fd = jm.submit("preview", blocker)
        while jm.progress()["job"] is None:
            time.sleep(0.005)
        assert jm.cancel() == [jd.id]
        with pytest.raises(JobCancelled):
            fd.result(10)
        assert jm.progress()["last"]["state"] == "cancelled"
    finally:
        gate.set()
        jm.shutdown()


def test_transition_probabilities_with_precomputed_neighbours() -> None:
    from spacetravlr_py.transitions import knn, transition_probabilities

    rng = np.random.default_rng(2)
    X, D, E = rng.uniform(0, 3, (200, 12)), rng.normal(size=(200, 12)), rng.normal(size=(200, 2))
    for compat in (False, True):
        a = transition_probabilities(X, D, E, n_neighbors=20, reference_compat=compat)
        b = transition_probabilities(X, D, E, n_neighbors=20, reference_compat=compat,
                                     neighbors=knn(E, 20, include_self=compat))
        np.testing.assert_array_equal(a.neighbors, b.neighbors)
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
    with pytest.raises(ValueError, match="neighbors must be"):
        transition_probabilities(X, D, E, neighbors=np.zeros((10, 3), np.int64))
    with pytest.raises(ValueError, match="neighbors must be"):
        transition_probabilities(X, D, E, neighbors=np.full((200, 3), 500))
