"""Prior network: LR expansion, base GRN, NicheNet, species, directory resolution, build/load, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.cli.main import main as cli_main
from spacetravlr_py.errors import InputError
from spacetravlr_py.io import network as net
from spacetravlr_py.io import network_build as build
from spacetravlr_py.io import species as sp

CELLCHAT_CSV = """\
ligand,receptor,pathway,signaling
Tgfb1,Tgfbr1_Tgfbr2,TGFb,Secreted Signaling
Inhba_Inhbb,Acvr1_Acvr2a,ACTIVIN,Secreted Signaling
Tgfb1,Tgfbr1,TGFb,Cell-Cell Contact
Col1a1,Itgb1,COLLAGEN,ECM-Receptor
Cdh1,Cdh1,CDH,Cell-Cell Contact
Col1a1,Cd44,COLLAGEN,Secreted Signaling
"""

EXPECTED_PAIRS = [
    ("Tgfb1", "Tgfbr1"), ("Tgfb1", "Tgfbr2"),
    ("Inhba", "Acvr1"), ("Inhba", "Acvr2a"), ("Inhbb", "Acvr1"), ("Inhbb", "Acvr2a"),
    ("Col1a1", "Itgb1"), ("Cdh1", "Cdh1"), ("Col1a1", "Cd44"),
]


@pytest.fixture
def cellchat_csv(tmp_path: Path) -> Path:
    p = tmp_path / "cellchat_tiny.csv"
    p.write_text(CELLCHAT_CSV)
    return p


@pytest.fixture
def wide_grn(tmp_path: Path) -> Path:
    """CellOracle-style TF_info_matrix: two peaks for Foxo1 (duplicate edges collapse)."""
    df = pd.DataFrame({
        "peak_id": ["chr1_1_2", "chr1_5_6", "chr2_1_2", "chr3_1_2"],
        "gene_short_name": ["Foxo1", "Foxo1", "Pax5", "Tgfbr1"],
        "Stat3": [1.0, 1.0, 0.0, 1.0],
        "Ar": [0.0, 1.0, 1.0, 0.0],
        "Foxo1": [0.0, 0.0, 1.0, 0.0],
    })
    p = tmp_path / "base_grn.parquet"
    df.to_parquet(p, index=False)
    return p


@pytest.fixture
def nichenet_parquet(tmp_path: Path) -> Path:
    m = pd.DataFrame({"Tgfb1": [0.5, 0.0, 0.05], "Col1a1": [0.1, 0.3, 0.0]},
                     index=pd.Index(["Stat3", "Ar", "Gapdh"], name="target"))
    p = tmp_path / "ligand_target.parquet"
    m.to_parquet(p)
    return p


# --------------------------------------------------------------------------------------------------
# LR tables
# --------------------------------------------------------------------------------------------------


def test_expand_cellchat_complexes_order_dedup_signaling(cellchat_csv: Path) -> None:
    lr = build.read_lr_table(cellchat_csv)
    assert list(lr.columns) == list(build.LR_COLUMNS)
    assert list(zip(lr["ligand"], lr["receptor"])) == EXPECTED_PAIRS
    # the duplicate (Tgfb1, Tgfbr1) keeps its first row's signaling
    assert lr.loc[0, "signaling"] == _keys.SECRETED
    assert lr.loc[6, "signaling"] == "ECM-Receptor"
    assert lr.loc[2, "pathway"] == "ACTIVIN"


def test_expand_cellchat_in_memory_is_idempotent(cellchat_csv: Path) -> None:
    once = build.expand_cellchat(pd.read_csv(cellchat_csv))
    twice = build.expand_cellchat(once)
    pd.testing.assert_frame_equal(once, twice)


def test_liana_table_needs_a_resource_when_several(tmp_path: Path) -> None:
    p = tmp_path / "liana.csv"
    pd.DataFrame({
        "source": ["P1", "P2", "P3"],
        "source_genesymbol": ["TGFB1", "COL1A1", "Tgfb1"],
        "target_genesymbol": ["TGFBR1_TGFBR2", "ITGB1", "Tgfbr1"],
        "resource": ["consensus", "consensus", "mouseconsensus"],
    }).to_csv(p)
    with pytest.raises(InputError, match=r"liana\.csv.*2 LR resources.*--lr-resource"):
        build.read_lr_table(p)
    lr = build.read_lr_table(p, resource="consensus")
    assert list(zip(lr["ligand"], lr["receptor"])) == [("TGFB1", "TGFBR1"), ("TGFB1", "TGFBR2"),
                                                       ("COL1A1", "ITGB1")]
    assert lr["signaling"].isna().all()
    with pytest.raises(InputError, match="resource 'nope' not in the table"):
        build.read_lr_table(p, resource="nope")


def test_cellphonedb_v4_layout(tmp_path: Path) -> None:
    p = tmp_path / "CellPhoneDBv4.0.mouse.csv"
    p.write_text(",0,1,2,3\n0,Ptgr1,Ltb4r1,,Secreted Signaling\n1,Inhba_Inhbb,Acvr1,,Secreted Signaling\n"
                 "2,Cdh1,Cdh1,,Cell-Cell Contact\n")
    lr = build.read_lr_table(p)
    assert list(zip(lr["ligand"], lr["receptor"])) == [("Ptgr1", "Ltb4r1"), ("Inhba", "Acvr1"),
                                                       ("Inhbb", "Acvr1"), ("Cdh1", "Cdh1")]
    assert lr["signaling"].tolist()[-1] == "Cell-Cell Contact"


def test_unrecognised_lr_columns_name_file_and_columns(tmp_path: Path) -> None:
    p = tmp_path / "weird.csv"
    p.write_text("lig,rec\nA,B\n")
    with pytest.raises(InputError, match=r"weird\.csv: unrecognised ligand–receptor columns \(lig, rec\)"):
        build.read_lr_table(p)
    with pytest.raises(InputError, match=r"LR table file .*missing\.csv does not exist"):
        build.read_lr_table(tmp_path / "missing.csv")


# --------------------------------------------------------------------------------------------------
# Species
# --------------------------------------------------------------------------------------------------


def test_infer_species() -> None:
    assert sp.infer_species(["Foxo1", "Pax5", "Gapdh", "1700001C19Rik", "ACTB"]) == "mouse"
    assert sp.infer_species(["FOXO1", "PAX5", "C1orf112", "Gapdh", "123"]) == "human"
    assert sp.infer_species(["ENSMUSG00000000001", "ENSMUSG00000000028"]) == "mouse"
    with pytest.raises(InputError, match=r"1 mouse-style.*1 human-style.*\[data\]\.species"):
        sp.infer_species(["Foxo1", "PAX5"])
    with pytest.raises(InputError, match=r"cannot tell the species.*first 0"):
        sp.infer_species(["123", "456"])
    # only the first n symbols with letters vote
    assert sp.infer_species(["1", "Foxo1"] + ["PAX5"] * 5, n=1) == "mouse"


# --------------------------------------------------------------------------------------------------
# Base GRN and NicheNet
# --------------------------------------------------------------------------------------------------


def test_read_base_grn_wide_dedups_peaks(wide_grn: Path) -> None:
    g = build.read_base_grn(wide_grn)
    assert list(zip(g["source"], g["target"])) == [
        ("Ar", "Foxo1"), ("Stat3", "Foxo1"), ("Ar", "Pax5"), ("Foxo1", "Pax5"), ("Stat3", "Tgfbr1"),
    ]
    # the same table through pandas (in-memory path) agrees
    pd.testing.assert_frame_equal(build.grn_edges(pd.read_parquet(wide_grn)), g)


def test_read_base_grn_long_and_bad_columns(tmp_path: Path) -> None:
    p = tmp_path / "edges.tsv"
    p.write_text("source\ttarget\nStat3\tFoxo1\nAr\tFoxo1\nStat3\tFoxo1\n")
    g = build.read_base_grn(p)
    assert list(zip(g["source"], g["target"])) == [("Ar", "Foxo1"), ("Stat3", "Foxo1")]
    bad = tmp_path / "bad.csv"
    bad.write_text("tf,gene\nStat3,Foxo1\n")
    with pytest.raises(InputError, match=r"bad\.csv: unrecognised base GRN columns \(tf, gene\)"):
        build.read_base_grn(bad)


def test_read_nichenet_matrix(nichenet_parquet: Path, tmp_path: Path) -> None:
    nn = build.read_nichenet(nichenet_parquet)
    assert list(zip(nn["source"], nn["target"], nn["weight"])) == [
        ("Tgfb1", "Stat3", 0.5), ("Tgfb1", "Gapdh", 0.05), ("Col1a1", "Stat3", 0.1), ("Col1a1", "Ar", 0.3)]
    assert len(build.read_nichenet(nichenet_parquet, min_weight=0.1)) == 2
    csv = tmp_path / "lt.csv"
    pd.read_parquet(nichenet_parquet).to_csv(csv)
    pd.testing.assert_frame_equal(build.read_nichenet(csv), nn)


# --------------------------------------------------------------------------------------------------
# Build, write, load, Network view
# --------------------------------------------------------------------------------------------------


def test_build_write_load_roundtrip(wide_grn: Path, cellchat_csv: Path, nichenet_parquet: Path,
                                    tmp_path: Path) -> None:
    df = build.build_network(wide_grn, cellchat_csv, nichenet_parquet, species="mouse")
    assert list(df.columns) == list(_keys.NETWORK_COLUMNS)
    assert df["edge_type"].tolist() == ["grn"] * 5 + ["lr"] * 9 + ["nichenet"] * 3  # Gapdh is no TF
    out = tmp_path / "out"
    path = net.write_network(df, out, "mouse")
    assert path == out / "mouse_network.parquet"
    assert [p.name for p in out.iterdir()] == ["mouse_network.parquet"]  # no temporary left behind
    back = net.load_network(out, "mouse")
    pd.testing.assert_frame_equal(back, df)
    assert back[back.edge_type == "grn"]["signaling"].isna().all()

    c = net.network_counts(back)
    assert (c.grn_edges, c.tfs, c.targets) == (5, 3, 3)
    assert (c.lr_pairs, c.ligands, c.receptors) == (9, 5, 7)
    assert (c.nichenet_edges, c.nichenet_ligands, c.nichenet_tfs) == (3, 2, 2)

    nw = net.Network.load(out)
    assert nw.species == "mouse" and nw.path == path
    assert nw.tfs_of("Foxo1") == ["Ar", "Stat3"]
    assert nw.tfs_of("Pax5") == ["Ar", "Foxo1"]
    assert nw.tfs_of("Unknown") == []
    assert nw.targets_of("Stat3") == ["Foxo1", "Tgfbr1"]
    assert nw.tfs == ["Ar", "Foxo1", "Stat3"]
    assert nw.lr_pairs() == EXPECTED_PAIRS
    assert nw.ligands == ["Tgfb1", "Inhba", "Inhbb", "Col1a1", "Cdh1"]
    assert nw.ligand_signaling["Col1a1"] == "ECM-Receptor"
    # the reference's rule: first row among pairs whose ligand and receptor are both measured
    assert nw.ligand_signaling_among({"Col1a1", "Cd44"}) == {"Col1a1": _keys.SECRETED}
    assert nw.nichenet_edges() == [("Tgfb1", "Stat3", 0.5), ("Col1a1", "Stat3", 0.1), ("Col1a1", "Ar", 0.3)]
    assert nw.nichenet_into("Stat3") == [("Tgfb1", 0.5), ("Col1a1", 0.1)]
    assert nw.counts == c


def test_nichenet_all_targets_and_min_weight(wide_grn: Path, cellchat_csv: Path,
                                             nichenet_parquet: Path) -> None:
    df = build.build_network(wide_grn, cellchat_csv, nichenet_parquet, species="mouse",
                           nichenet_tfs_only=False, nichenet_min_weight=0.06)
    nn = df[df.edge_type == "nichenet"]
    assert sorted(zip(nn.source, nn.target)) == [("Col1a1", "Ar"), ("Col1a1", "Stat3"), ("Tgfb1", "Stat3")]


def test_build_species_checks(wide_grn: Path, cellchat_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"species is 'human' but the gene symbols of .*cellchat_tiny\.csv "
                                         r"look mouse; pass --species mouse"):
        build.build_network(wide_grn, cellchat_csv, species="human")
    human_lr = tmp_path / "human.csv"
    human_lr.write_text("ligand,receptor,pathway,signaling\nTGFB1,TGFBR1,TGFb,Secreted Signaling\n")
    with pytest.raises(InputError, match=r"base_grn\.parquet look mouse but those of .*human\.csv look "
                                         r"human"):
        build.build_network(wide_grn, human_lr, species="mouse")
    with pytest.raises(InputError, match="unknown species 'rat'"):
        build.build_network(wide_grn, cellchat_csv, species="rat")


def test_load_network_errors_name_file_and_column(tmp_path: Path) -> None:
    p = tmp_path / "mouse_network.parquet"
    pd.DataFrame({"source": ["A"], "edge_type": ["grn"]}).to_parquet(p)
    with pytest.raises(InputError, match=r"mouse_network\.parquet: missing column 'target'"):
        net.load_network(p)
    pd.DataFrame({"source": ["A"], "target": ["B"], "edge_type": ["tf"]}).to_parquet(p)
    with pytest.raises(InputError, match=r"mouse_network\.parquet: unknown edge_type value\(s\) tf"):
        net.load_network(p)
    pd.DataFrame({"source": ["A"], "target": ["B"], "edge_type": ["grn"], "weight": ["x"]}).to_parquet(p)
    with pytest.raises(InputError, match=r"mouse_network\.parquet: column 'weight' is not a finite "
                                         r"number in row 0"):
        net.load_network(p)
    pd.DataFrame({"source": ["A"], "target": ["B"], "edge_type": ["grn"]}).to_parquet(p)
    df = net.load_network(tmp_path)  # the folder's single network file; weight defaults to 1.0
    assert df["weight"].tolist() == [1.0]
    assert df["signaling"].tolist() == [None]
    p.write_text("not parquet")
    with pytest.raises(InputError, match=r"cannot read network file .*mouse_network\.parquet as parquet"):
        net.load_network(p)
    with pytest.raises(InputError, match=r"network path .*nowhere does not exist"):
        net.load_network(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------------
# Directory resolution
# --------------------------------------------------------------------------------------------------


def _net_dir(root: Path, species: str = "mouse") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"source": ["A"], "target": ["B"], "edge_type": ["grn"]}).to_parquet(
        root / f"{species}_network.parquet")
    return root


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No env var, an empty package data dir, cwd deep inside tmp_path."""
    monkeypatch.delenv(_keys.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(net, "package_data_dir", lambda: tmp_path / "pkg" / "data")
    cwd = tmp_path / "proj" / "sub" / "deeper"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    return tmp_path


def test_resolution_order(isolated: Path, monkeypatch: pytest.MonkeyPatch,
                          caplog: pytest.LogCaptureFixture) -> None:
    tmp = isolated
    with pytest.raises(InputError, match=r"no mouse_network\.parquet found \(looked in: .*pkg/data \(package "
                                         r"data\); .*deeper/data and the data/ folders.*network build"):
        net.resolve_network_dir(None, "mouse")
    walked = _net_dir(tmp / "proj" / "data")                      # ./data walking up
    assert net.resolve_network_dir(None, "mouse") == walked
    cwd_data = _net_dir(Path.cwd() / "data")                      # nearest data/ wins
    assert net.resolve_network_dir(None, "mouse") == cwd_data
    pkg = _net_dir(tmp / "pkg" / "data")                          # package data before ./data
    assert net.resolve_network_dir(None, "mouse") == pkg
    env = _net_dir(tmp / "env")                                   # env before package data
    monkeypatch.setenv(_keys.DATA_DIR_ENV, str(env))
    assert net.resolve_network_dir(None, "mouse") == env
    conf = _net_dir(tmp / "conf")                                 # configured first of all
    with caplog.at_level("INFO", logger="spacetravlr_py.io"):
        assert net.resolve_network_dir(conf, "mouse") == conf
        assert net.resolve_network_dir(conf / "mouse_network.parquet", "mouse") == conf
    assert "conf/mouse_network.parquet" in caplog.text
    # an env folder without the file falls through; a configured one is an error
    monkeypatch.setenv(_keys.DATA_DIR_ENV, str(tmp / "empty"))
    assert net.resolve_network_dir(None, "mouse") == pkg
    with pytest.raises(InputError, match=r"network_data_dir .*empty has no mouse_network\.parquet"):
        net.resolve_network_dir(tmp / "empty", "mouse")
    assert net.load_network(None, "mouse").attrs["path"] == str(pkg / "mouse_network.parquet")


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def test_cli_help_is_fast_and_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["network", "--help"], ["network", "build", "--help"], ["network", "info", "--help"]):
        with pytest.raises(SystemExit) as e:
            cli_main(argv)
        assert e.value.code == 0
        assert "spacetravlr network" in capsys.readouterr().out


def test_cli_build_and_info(wide_grn: Path, cellchat_csv: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    rc = cli_main(["network", "build", "--grn", str(wide_grn), "--lr", str(cellchat_csv), "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "species: mouse (inferred" in text and "LR pairs" in text
    assert f"wrote {out / 'mouse_network.parquet'}" in text
    assert len(net.load_network(out / "mouse_network.parquet")) == 14
    assert cli_main(["network", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "grn edges" in text and "ECM-Receptor" in text


def test_cli_errors_are_one_line(tmp_path: Path, cellchat_csv: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACETRAVLR_DEBUG", raising=False)
    rc = cli_main(["network", "build", "--grn", str(tmp_path / "nope.parquet"), "--lr", str(cellchat_csv),
                   "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc != 0
    assert err.count("\n") == 1 and "nope.parquet does not exist" in err
    tie = tmp_path / "tie.csv"
    tie.write_text("ligand,receptor\nTgfb1,TGFBR1\n")
    assert cli_main(["network", "build", "--grn", "x", "--lr", str(tie), "-o", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --species mouse or --species human" in err


# --------------------------------------------------------------------------------------------------
# Real databases (../shared/data)
# --------------------------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize(("species", "n_rows", "n_pairs", "n_ligands", "n_receptors"),
                         [("mouse", 2019, 2077, 579, 471), ("human", 1939, 1994, 548, 465)])
def test_real_cellchat_expansion(shared_data: Path, species: str, n_rows: int, n_pairs: int,
                                 n_ligands: int, n_receptors: int) -> None:
    raw = pd.read_csv(shared_data / "lr" / f"cellchat_{species}.csv")
    lr = build.read_lr_table(shared_data / "lr" / f"cellchat_{species}.csv")
    print(f"{species}: {len(raw)} CellChat rows -> {len(lr)} unique ligand-receptor pairs")
    assert len(raw) == n_rows
    assert len(lr) == n_pairs and 1900 <= n_pairs <= 2150
    assert (lr["ligand"].nunique(), lr["receptor"].nunique()) == (n_ligands, n_receptors)
    assert not lr["ligand"].str.contains("_").any() and not lr["receptor"].str.contains("_").any()
    assert set(lr["signaling"]) == {_keys.SECRETED, "ECM-Receptor", "Cell-Cell Contact"}
    # same pairs, same order as the reference's iterrows() expansion + drop_duplicates
    ref = [(a, b) for l, r in zip(raw["ligand"], raw["receptor"]) for a in l.split("_") for b in r.split("_")]
    assert list(zip(lr["ligand"], lr["receptor"])) == list(dict.fromkeys(ref))
    assert sp.infer_species(lr["ligand"]) == species


@pytest.mark.realdata
@pytest.mark.parametrize(("file", "resource", "species", "n_pairs"), [
    ("CellPhoneDBv4.0.mouse.csv", None, "mouse", 1582),
    ("CellPhoneDBv4.0.human.csv", None, "human", 1885),
    ("liana_omni_resource.csv", "consensus", "human", 4744),
    ("liana_omni_resource.csv", "mouseconsensus", "mouse", 4075),
])
def test_real_other_lr_layouts(shared_data: Path, file: str, resource: str | None, species: str,
                               n_pairs: int) -> None:
    lr = build.read_lr_table(shared_data / "lr" / file, resource=resource)
    assert len(lr) == n_pairs
    assert not lr["ligand"].str.contains("_").any() and not lr["receptor"].str.contains("_").any()
    assert sp.infer_species(lr["ligand"]) == species


@pytest.mark.realdata
def test_real_mouse_cli_end_to_end(shared_data: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["network", "build", "--grn", str(shared_data / "grn" / "mouse_base_grn.parquet"),
                   "--lr", str(shared_data / "lr" / "cellchat_mouse.csv"), "-o", str(tmp_path)])
    out = capsys.readouterr().out
    print(out)
    assert rc == 0 and "species: mouse" in out
    nw = net.Network.load(tmp_path, "mouse")
    c = nw.counts
    assert (c.grn_edges, c.tfs, c.targets) == (3_889_043, 1_094, 24_548)
    assert (c.lr_pairs, c.ligands, c.receptors) == (2_077, 579, 471)
    assert c.nichenet_edges == 0
    assert f"{c.grn_edges:,}" in out
    # spot checks against the wide matrix: every TF with a 1 in any Foxo1 peak
    wide = pd.read_parquet(shared_data / "grn" / "mouse_base_grn.parquet")
    rows = wide[wide["gene_short_name"] == "Foxo1"].drop(columns=["peak_id", "gene_short_name"])
    assert nw.tfs_of("Foxo1") == sorted(rows.columns[(rows.to_numpy() > 0).any(axis=0)])
    assert nw.lr_pairs()[:2] == [("Tgfb1", "Tgfbr1"), ("Tgfb1", "Tgfbr2")]
    assert nw.ligand_signaling["Tgfb1"] == _keys.SECRETED


@pytest.mark.realdata
def test_real_human_build(shared_data: Path) -> None:
    df = build.build_network(shared_data / "grn" / "human_base_grn.parquet",
                           shared_data / "lr" / "cellchat_human.csv", species="human")
    c = net.network_counts(df)
    print(c)
    assert (c.grn_edges, c.tfs, c.targets) == (4_528_411, 1_094, 27_100)
    assert (c.lr_pairs, c.ligands, c.receptors) == (1_994, 548, 465)
    lr = df[df.edge_type == "lr"]
    assert lr.index.min() == c.grn_edges and np.all(np.diff(lr.index) == 1)  # grn block, then lr block


def test_network_module_split_keeps_species_names_and_drops_dead_lookups() -> None:
    # loaders of a network for a dataset import the species functions from io.network
    assert net.infer_species is sp.infer_species and net.guess_species is sp.guess_species
    assert sp.check_species("human") == "human"
    with pytest.raises(InputError, match="unknown species 'rat'"):
        sp.check_species("rat")
    view = net.Network.from_frame(pd.DataFrame({"source": ["A"], "target": ["B"], "edge_type": ["grn"]}))
    assert view.tfs == ["A"] and view.tfs_of("B") == ["A"]
    assert not hasattr(view, "grn_targets") and not hasattr(view, "lr_signaling")
