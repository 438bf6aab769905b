"""Modulator selection (SPEC §4) and the design matrix (SPEC §5.1) on small hand-made networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from builders import network_frame
from spacetravlr_py.errors import InputError
from spacetravlr_py.modulators import (
    TFL_TOP_LIGANDS,
    Modulators,
    ModulatorSelector,
    design_matrix,
    parse_lr,
    read_list_file,
)

GENES = ["T", "Zf", "Af", "Mf", "La", "Lb", "Lc", "Ra", "Rb", "Rc", "X1", "X2"]


def test_tfs_sorted_deduplicated_target_excluded_absent_dropped():
    n = network_frame(grn=[("Zf", "T"), ("Af", "T"), ("Zf", "T"), ("T", "T"), ("Absent", "T"), ("Mf", "Other"),
                           ("Mf", "X1")])
    sel = ModulatorSelector(n, GENES)
    m = sel.select("T")
    assert m.tfs == ("Af", "Zf")
    assert sel.select("X1").tfs == ("Mf",)
    # a target not in the data has no grn index entry; a gene without edges has no TFs
    assert sel.select("X2").tfs == ()


def test_lr_pairs_both_present_not_target_deduplicated_sorted():
    n = network_frame(lr=[("Lb", "Rb"), ("La", "Ra"), ("La", "Ra"), ("La", "Rb"), ("Lc", "Absent"),
                          ("Absent", "Rc"), ("T", "Rc"), ("Lc", "T")])
    sel = ModulatorSelector(n, GENES)
    assert sel.select("X1").lr_pairs == (("La", "Ra"), ("La", "Rb"), ("Lb", "Rb"), ("Lc", "T"), ("T", "Rc"))
    # pairs touching the target are dropped (as ligand or as receptor)
    assert sel.select("T").lr_pairs == (("La", "Ra"), ("La", "Rb"), ("Lb", "Rb"))
    assert sel.select("Ra").lr_pairs == (("La", "Rb"), ("Lb", "Rb"), ("Lc", "T"), ("T", "Rc"))
    names = sel.select("T").names
    assert names == ["La$Ra", "La$Rb", "Lb$Rb"]


def test_lr_pairs_sorted_by_name_not_by_tuple():
    # "A$Z" < "AB$C" as names ('$' sorts before letters), although ("A", "Z") < ("AB", "C") too; use a
    # case where the orders differ: "A1$R" vs "A$R9" -> by name "A$R9" < "A1$R"
    genes = ["T", "A", "A1", "R", "R9"]
    sel = ModulatorSelector(network_frame(lr=[("A1", "R"), ("A", "R9")]), genes)
    assert sel.select("T").names == ["A$R9", "A1$R"]


def test_max_ligands_ranks_by_mean_expression_ties_by_name():
    n = network_frame(lr=[("La", "Ra"), ("Lb", "Rb"), ("Lc", "Rc"), ("Lc", "Ra")])
    means = {"La": 1.0, "Lb": 5.0, "Lc": 1.0}
    sel = ModulatorSelector(n, GENES, ligand_means=means, max_ligands=2)
    # Lb first (5.0), then La and Lc tie at 1.0: La wins by name
    assert sel.select("T").lr_pairs == (("La", "Ra"), ("Lb", "Rb"))
    sel1 = ModulatorSelector(n, GENES, ligand_means=means, max_ligands=1)
    assert sel1.select("T").lr_pairs == (("Lb", "Rb"),)
    # ligands without a mean rank as 0
    sel3 = ModulatorSelector(n, GENES, ligand_means={"Lc": 0.5}, max_ligands=1)
    assert sel3.select("T").lr_pairs == (("Lc", "Ra"), ("Lc", "Rc"))
    assert ModulatorSelector(n, GENES, ligand_means=means, max_ligands=10).select("T").n == 4


def test_max_ligands_applies_to_database_pairs_only():
    n = network_frame(lr=[("La", "Ra"), ("Lb", "Rb")])
    sel = ModulatorSelector(n, GENES, ligand_means={"La": 2.0, "Lb": 1.0}, max_ligands=1,
                            extra_lr=["Lc$Rc", "Lb,Rb"])
    assert sel.select("T").lr_pairs == (("La", "Ra"), ("Lc", "Rc"), ("Lb", "Rb"))


def test_tf_ligand_pairs_rules():
    tfs = ["Af", "Mf", "Zf"]
    genes = ["T", *tfs, "L1", "L2", "L3", "L4", "L5", "L6", "L7", "Lx", "R"]
    lr = [(f"L{i}", "R") for i in range(1, 8)]
    nn = [
        # Af: 7 ligands above the cutoff -> top 5 by weight
        *[(f"L{i}", "Af", 0.3 + 0.1 * i) for i in range(1, 8)],
        # Mf: at the cutoff (not above), below it, a ligand without LR pair, a ligand absent from the data
        ("L1", "Mf", 0.2), ("L2", "Mf", 0.1), ("Lx", "Mf", 0.9), ("Gone", "Mf", 0.9), ("L3", "Mf", 0.21),
        # Zf is not a TF of T
        ("L1", "Zf", 0.9),
        # duplicated edge: the larger weight counts
        ("L3", "Af", 0.05),
    ]
    n = network_frame(grn=[("Af", "T"), ("Mf", "T"), ("Zf", "Other")], lr=lr, nichenet=nn)
    sel = ModulatorSelector(n, genes, tf_ligand_cutoff=0.2)
    m = sel.select("T")
    af = sorted(l for l, t in m.tfl_pairs if t == "Af")
    assert len(af) == TFL_TOP_LIGANDS == 5
    assert af == ["L3", "L4", "L5", "L6", "L7"]
    assert [p for p in m.tfl_pairs if p[1] == "Mf"] == [("L3", "Mf")]
    assert all(t != "Zf" for _, t in m.tfl_pairs)
    # named L#TF and sorted by name
    names = [n_ for n_ in m.names if "#" in n_]
    assert names == sorted(names) and "L3#Af" in names
    # a ligand must be among the target's selected LR ligands: with max_ligands=1 only L7 remains
    sel1 = ModulatorSelector(n, genes, tf_ligand_cutoff=0.2, ligand_means={"L7": 9.0}, max_ligands=1)
    assert sel1.select("T").tfl_pairs == (("L7", "Af"),)
    # a higher cutoff keeps fewer
    sel2 = ModulatorSelector(n, genes, tf_ligand_cutoff=0.95)
    assert sel2.select("T").tfl_pairs == (("L7", "Af"),)


def test_tf_ligand_top5_ties_broken_by_ligand_name():
    genes = ["T", "Af", "R", *[f"L{c}" for c in "abcdefg"]]
    n = network_frame(grn=[("Af", "T")], lr=[(f"L{c}", "R") for c in "abcdefg"],
                      nichenet=[(f"L{c}", "Af", 0.5) for c in "gfedcba"])
    m = ModulatorSelector(n, genes).select("T")
    assert [l for l, _ in m.tfl_pairs] == ["La", "Lb", "Lc", "Ld", "Le"]


def test_tfl_ligand_equal_to_target_is_excluded():
    genes = ["T", "Af", "R", "La"]
    n = network_frame(grn=[("Af", "La")], lr=[("La", "R"), ("T", "R")], nichenet=[("T", "Af", 0.9), ("La", "Af", 0.9)])
    m = ModulatorSelector(n, genes).select("La")
    assert m.lr_pairs == (("T", "R"),)
    assert m.tfl_pairs == (("T", "Af"),)


def test_parse_lr_forms_and_errors():
    assert parse_lr(["La$Ra", "Lb,Rb", " Lc , Rc ", ""]) == [("La", "Ra"), ("Lb", "Rb"), ("Lc", "Rc")]
    for bad in ("La", "La$Ra$Rb", "La,", "$Ra"):
        with pytest.raises(InputError, match="not a ligand-receptor pair") as e:
            parse_lr([bad], source="--extra-lr")
        assert repr(bad) in str(e.value) and "--extra-lr" in str(e.value)


def test_read_list_file_comments_commas_and_missing(tmp_path: Path):
    f = tmp_path / "lr.txt"
    f.write_text("# my pairs\nLa$Ra  # a comment\n\nLb,Rb\nLc$Rc, Ld$Rd\n   # only a comment\n")
    assert read_list_file(f, what="extra_lr") == ["La$Ra", "Lb,Rb", "Lc$Rc", "Ld$Rd"]
    assert parse_lr(read_list_file(f, what="extra_lr")) == [("La", "Ra"), ("Lb", "Rb"), ("Lc", "Rc"), ("Ld", "Rd")]
    g = tmp_path / "mods.txt"
    g.write_text("X1\nX2, Mf # trailing\n#X9\n")
    assert read_list_file(g, what="extra_modulators") == ["X1", "X2", "Mf"]
    with pytest.raises(InputError, match="cannot read extra_lr file") as e:
        read_list_file(tmp_path / "nope.txt", what="extra_lr")
    assert "nope.txt" in str(e.value)


def test_extra_lr_appended_target_skipped_absent_dropped_and_off_without_lr():
    n = network_frame(lr=[("Lb", "Rb")])
    extra = ["La$Ra", "Lb,Rb", "T$Rc", "Lc$T", "Gone$Ra", "Lc$Rc"]
    sel = ModulatorSelector(n, GENES, extra_lr=extra)
    m = sel.select("T")
    # database pairs first, then extras in the given order; duplicates and pairs touching T skipped
    assert m.lr_pairs == (("Lb", "Rb"), ("La", "Ra"), ("Lc", "Rc"))
    assert sel.select("X1").lr_pairs == (("Lb", "Rb"), ("La", "Ra"), ("T", "Rc"), ("Lc", "T"), ("Lc", "Rc"))
    assert set(m.ligands) == {"Lb", "La", "Lc"}
    off = ModulatorSelector(n, GENES, extra_lr=extra, use_lr=False)
    assert off.select("T").lr_pairs == ()


def test_extra_lr_does_not_feed_tf_ligand_pairs():
    n = network_frame(grn=[("Af", "T")], lr=[("Lb", "Rb")], nichenet=[("La", "Af", 0.9), ("Lb", "Af", 0.9)])
    m = ModulatorSelector(n, GENES, extra_lr=["La$Ra"]).select("T")
    assert m.tfl_pairs == (("Lb", "Af"),)


def test_extra_modulators_exclusions():
    n = network_frame(grn=[("Af", "T")], lr=[("La", "Ra")], nichenet=[("La", "Af", 0.9)])
    sel = ModulatorSelector(n, GENES, extra_modulators=["X1", "T", "Af", "La", "Ra", "X1", "Gone", "X2"])
    m = sel.select("T")
    assert m.extras == ("X1", "X2")
    assert m.names == ["Af", "La$Ra", "La#Af", "X1", "X2"]
    assert list(m.groups) == [0, 1, 2, 3, 3]
    # exclusions are per target: X1 has no TF, so Af may be its extra modulator; X1 itself is not
    assert sel.select("X1").extras == ("T", "Af", "X2")


def test_use_flags_drop_families():
    n = network_frame(grn=[("Af", "T")], lr=[("La", "Ra")], nichenet=[("La", "Af", 0.9)])
    full = ModulatorSelector(n, GENES).select("T")
    assert full.names == ["Af", "La$Ra", "La#Af"]
    assert ModulatorSelector(n, GENES, use_tf=False).select("T").names == ["La$Ra", "La#Af"]
    assert ModulatorSelector(n, GENES, use_lr=False).select("T").names == ["Af", "La#Af"]
    assert ModulatorSelector(n, GENES, use_tfl=False).select("T").names == ["Af", "La$Ra"]
    none = ModulatorSelector(n, GENES, use_tf=False, use_lr=False, use_tfl=False)
    assert none.select("T").is_orphan and none.all_ligands == []
    # a TF still used by an L#TF pair is not an extra modulator; once no family uses it, it may be one
    assert ModulatorSelector(n, GENES, use_tf=False, extra_modulators=["Af"]).select("T").extras == ()
    m = ModulatorSelector(n, GENES, use_tf=False, use_tfl=False, extra_modulators=["Af"]).select("T")
    assert m.names == ["La$Ra", "Af"] and m.groups.tolist() == [1, 3]


def test_orphan_rule():
    n = network_frame(grn=[("Af", "X1")])
    sel = ModulatorSelector(n, GENES)
    assert sel.select("T").is_orphan and sel.select("T").n == 0
    assert not sel.select("X1").is_orphan
    assert not ModulatorSelector(n, GENES, extra_modulators=["X2"]).select("T").is_orphan


def test_all_ligands_cover_every_target():
    n = network_frame(grn=[("Af", "T")], lr=[("Lb", "Rb"), ("La", "Ra"), ("T", "Rc")],
            nichenet=[("La", "Af", 0.9)])
    sel = ModulatorSelector(n, GENES, extra_lr=["Lc$Rc"])
    assert sel.all_ligands == ["La", "Lb", "Lc", "T"]
    for g in GENES:
        assert set(sel.select(g).ligands) <= set(sel.all_ligands)
    assert ModulatorSelector(n, GENES, extra_lr=["Lc$Rc"], use_lr=False).all_ligands == ["La", "Lb", "T"]


def test_selector_accepts_numeric_looking_and_categorical_network_columns():
    n = network_frame(grn=[("Af", "T")], lr=[("La", "Ra")]).astype({"source": "category", "target": "category"})
    assert ModulatorSelector(n, GENES).select("T").names == ["Af", "La$Ra"]


def test_design_matrix_columns_and_groups():
    rng = np.random.default_rng(0)
    N = 7
    expr = {g: rng.uniform(0.5, 2.0, N) for g in GENES}
    RL = {g: rng.uniform(0.0, 1.0, N) for g in GENES}
    asked: list[list[str]] = []

    def received(ligs: list[str]) -> np.ndarray:
        asked.append(list(ligs))
        return np.column_stack([RL[l] for l in ligs])

    m = Modulators(target="T", tfs=("Af", "Zf"), lr_pairs=(("La", "Ra"), ("Lb", "Rb")),
                   tfl_pairs=(("La", "Af"), ("Lc", "Zf")), extras=("X1",))
    X = design_matrix(m, expr.__getitem__, received)
    assert X.shape == (N, 7) and X.dtype == np.float64 and X.flags.f_contiguous
    assert asked == [["La", "Lb", "Lc"]]  # one call, each ligand once, in first-use order
    expected = np.column_stack([expr["Af"], expr["Zf"], RL["La"] * expr["Ra"], RL["Lb"] * expr["Rb"],
                                RL["La"] * expr["Af"], RL["Lc"] * expr["Zf"], expr["X1"]])
    np.testing.assert_array_equal(X, expected)
    assert m.names == ["Af", "Zf", "La$Ra", "Lb$Rb", "La#Af", "Lc#Zf", "X1"]
    assert m.groups.tolist() == [0, 0, 1, 1, 2, 2, 3]
    assert m.groups.dtype == np.int64


def test_design_matrix_without_ligands_does_not_ask_for_received():
    expr = {"Af": np.arange(3.0), "X1": np.ones(3)}

    def received(ligs: list[str]) -> np.ndarray:
        raise AssertionError("no ligand, no received amounts")

    X = design_matrix(Modulators(target="T", tfs=("Af",), extras=("X1",)), expr.__getitem__, received)
    np.testing.assert_array_equal(X, np.column_stack([np.arange(3.0), np.ones(3)]))
