"""Lazy import of the optional ``prep`` dependencies (scanpy, leidenalg, igraph)."""

from __future__ import annotations

from types import ModuleType

from ..errors import SpaceTravLRError

INSTALL_HINT = 'pip install "spacetravlr-py[prep]"'


class MissingExtraError(SpaceTravLRError, ImportError):
    """An optional dependency of ``spacetravlr prep`` is not installed."""


def require_scanpy() -> ModuleType:
    """Import and return :mod:`scanpy`, or raise one clear line naming the ``prep`` extra."""
    try:
        import scanpy as sc
    except ImportError as e:
        what = "" if e.name in (None, "scanpy") else f" (missing: {e.name})"
        raise MissingExtraError(f"spacetravlr prep needs scanpy, which cannot be imported{what}; "
                                f"install the prep extra: {INSTALL_HINT}") from None
    return sc


def require_leiden() -> None:
    """Check that the Leiden clustering backend (igraph + leidenalg) is importable."""
    for mod in ("igraph", "leidenalg"):
        try:
            __import__(mod)
        except ImportError:
            raise MissingExtraError(f"Leiden clustering needs {mod}, which is not installed; install the prep "
                                    f"extra ({INSTALL_HINT}) or name existing labels with --cluster-key") from None
