"""Modulator names and kind codes: one parser, one set of codes, used by training, betadata and perturbation."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from builders import beta_frame
from spacetravlr_py import naming
from spacetravlr_py.errors import InputError
from spacetravlr_py.modulators import Modulators

SRC = Path(__file__).resolve().parents[1] / "src" / "spacetravlr_py"


def test_names_round_trip_and_kinds() -> None:
    assert naming.lr_name("Il6", "Il6st") == "Il6$Il6st" and naming.tfl_name("Il6", "Stat3") == "Il6#Stat3"
    assert naming.parse_modulator("Il6$Il6st") == (naming.LR, "Il6", "Il6st")
    assert naming.parse_modulator("Il6#Stat3") == (naming.TFL, "Il6", "Stat3")
    assert naming.parse_modulator("Foxo1") == (naming.TF, "Foxo1", "")
    # the first separator decides; '$' before '#'; the rest stays in the second name
    assert naming.parse_modulator("A#B$C") == (naming.LR, "A#B", "C")
    assert naming.parse_modulator("L$R$X") == (naming.LR, "L", "R$X")
    assert [naming.parse_modulator(m).ligand for m in ("L$R", "L#T", "T")] == ["L", "L", None]
    assert [naming.modulator_kind(m) for m in ("T", "L$R", "L#T")] == [0, 1, 2]
    assert naming.KIND_NAMES[naming.EXTRA] == "extra" and len(naming.KIND_NAMES) == 4


def test_codes_agree_between_training_and_betadata() -> None:
    mods = Modulators("G", tfs=("T1",), lr_pairs=(("L", "R"),), tfl_pairs=(("L", "T1"),), extras=("X",))
    assert mods.names == ["T1", "L$R", "L#T1", "X"]
    assert mods.groups.tolist() == [naming.TF, naming.LR, naming.TFL, naming.EXTRA]
    # read back from a betadata file, an extra modulator is indistinguishable from a TF
    f = beta_frame("G", ["a"], mods.names, np.ones((1, 4)))
    assert f.groups.tolist() == [naming.TF, naming.LR, naming.TFL, naming.TF]


def test_parse_lr_forms_and_one_line_errors() -> None:
    assert naming.parse_lr(["La$Ra", " Lb , Rb ", ""]) == [("La", "Ra"), ("Lb", "Rb")]
    for bad in ("La", "La$", "La,Rb,Rc", "L$R$X"):
        with pytest.raises(InputError, match=r"--extra-lr: .* is not a ligand-receptor pair"):
            naming.parse_lr([bad], source="--extra-lr")


def test_no_other_module_splits_modulator_names() -> None:
    """Only naming.py (and _keys.py, which defines them) touch the separators in code, apart from
    reading user lists (modulators.read_list_file) and the lead's training modules."""
    allowed = {"naming.py", "_keys.py", "modulators.py", "training/context.py"}
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("LR_SEP", "TFL_SEP"):
                offenders.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.alias) and node.name in ("LR_SEP", "TFL_SEP"):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []
