"""Which species a list of gene symbols belongs to (mouse ``Abc1`` vs human ``ABC1``).

Used to pick ``{species}_network.parquet`` when ``[data].species`` is not set, and to check that a
dataset, a network and the databases it is built from agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .. import _keys
from ..errors import InputError, short_list

SPECIES_HINT = 'set [data].species = "mouse" or "human"'
"""The fix named in errors about an unknown or undecidable species."""

_HAS_LETTER = re.compile(r"[A-Za-z]")
_HUMAN_ORF = re.compile(r"^C\d+orf\d+", re.IGNORECASE)


def _symbol_style(symbol: str) -> str | None:
    """``"mouse"`` for ``Abc1``-style symbols, ``"human"`` for ``ABC1``, else None."""
    if symbol.startswith("ENSMUSG"):
        return "mouse"
    if symbol.startswith("ENSG"):
        return "human"
    if _HUMAN_ORF.match(symbol):  # C1orf112: human despite the lowercase letters
        return "human"
    letters = [c for c in symbol if c.isalpha()]
    if not letters:
        return None
    if all(c.isupper() for c in letters):
        return "human"
    if letters[0].isupper() and any(c.islower() for c in letters):
        return "mouse"
    return None


def species_votes(names: Iterable[object], n: int = 100) -> tuple[int, int, list[str]]:
    """Count mouse-style and human-style symbols among the first ``n`` that contain letters.

    Returns
    -------
    (mouse, human, examined)
        Vote counts and the symbols examined.
    """
    examined: list[str] = []
    for name in names:
        s = str(name).strip()
        if _HAS_LETTER.search(s):
            examined.append(s)
            if len(examined) >= n:
                break
    mouse = human = 0
    for s in examined:
        style = _symbol_style(s)
        if style == "mouse":
            mouse += 1
        elif style == "human":
            human += 1
    return mouse, human, examined


def guess_species(names: Iterable[object], n: int = 100) -> str | None:
    """Like :func:`infer_species` but returns None instead of raising when undecided."""
    mouse, human, _ = species_votes(names, n)
    return _majority(mouse, human)


def _majority(mouse: int, human: int) -> str | None:
    if mouse > human:
        return "mouse"
    if human > mouse:
        return "human"
    return None


def infer_species(var_names: Iterable[object], *, n: int = 100, hint: str = SPECIES_HINT,
                  what: str = "var_names") -> str:
    """Infer ``"mouse"`` or ``"human"`` from gene symbols by majority vote.

    Up to the first ``n`` symbols that contain letters vote: ``Abc1`` (first letter upper case,
    some lower case letters) is mouse, ``ABC1`` (all letters upper case) is human. Ensembl ids
    (``ENSMUSG…`` / ``ENSG…``) and ``C1orf112``-style human names are recognised too.

    Parameters
    ----------
    var_names
        Gene symbols, e.g. ``adata.var_names``.
    n
        How many symbols with letters to examine.
    hint
        The fix suggested in the error message.
    what
        What the symbols are, for the error message.

    Returns
    -------
    str
        ``"mouse"`` or ``"human"``.

    Raises
    ------
    InputError
        On a tie (including no usable symbol at all).
    """
    mouse, human, examined = species_votes(var_names, n)
    winner = _majority(mouse, human)
    if winner is not None:
        return winner
    raise InputError(
        f"cannot tell the species from {what}: {mouse} mouse-style (Abc1) and {human} human-style (ABC1) "
        f"symbols among the first {len(examined)} with letters (e.g. {short_list(examined, 4)}); {hint}"
    )


def check_species(species: str | None) -> str:
    """``species`` itself when it is ``"mouse"`` or ``"human"``; an :class:`InputError` otherwise."""
    if species not in _keys.SPECIES:
        raise InputError(f"unknown species {species!r}; use one of {', '.join(_keys.SPECIES)}")
    return species

