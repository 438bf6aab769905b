"""Which files the viewer may open: every path must resolve under a data root (SPEC §9, security).

Roots are the ``--data-root`` folders, or by default the folders of the files given at start and the
working directory. A path is expanded (``~``), made absolute (against the working directory) and
resolved (symlinks followed, ``..`` removed) *before* the check, so neither ``..`` nor a symlink can
leave the roots.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ._errors import ApiError

MAX_PATH_CHARS = 4096


def resolve(path: str | os.PathLike[str], base: Path | None = None) -> Path:
    """``path`` expanded, absolute (relative to ``base`` or the working directory) and resolved."""
    p = Path(os.path.expanduser(os.fspath(path)))
    if not p.is_absolute():
        p = (base or Path.cwd()) / p
    return Path(os.path.realpath(p))


def default_roots(files: Iterable[str | os.PathLike[str] | None], dirs: Iterable[str | os.PathLike[str] | None],
                  cwd: Path | None = None) -> list[Path]:
    """Folders of ``files``, the ``dirs`` themselves and the working directory, resolved, deduplicated."""
    out: list[Path] = []
    for f in files:
        if f:
            r = resolve(f, cwd)
            out.append(r if r.is_dir() else r.parent)
    out.extend(resolve(d, cwd) for d in dirs if d)
    out.append(resolve(cwd or Path.cwd()))
    return list(dict.fromkeys(out))


def start_roots(h5ad: str | os.PathLike[str] | None, run_toml: str | os.PathLike[str] | None,
                network_dir: str | os.PathLike[str] | None, data_roots: Sequence[str | os.PathLike[str]] = ()
                ) -> list[Path]:
    """Roots of a viewer: the ``data_roots``, plus the folders of the files given at start (the run folder
    and the TOML's ``[data].adata_path`` folder included; for a condition folder of a run trained with
    ``--condition``, the parent run folder too); the working directory too when no ``data_roots`` are
    given. An unreadable TOML adds nothing (loading it reports the error)."""
    from .. import _keys
    from ..config import SpaceshipConfig
    from ..errors import SpaceTravLRError
    from ..rundir.conditions import parent_run
    from ..rundir.run import run_folder

    data = folder = parent = None
    if run_toml:
        try:
            toml = resolve(run_toml)
            folder = run_folder(toml)
            # a condition folder's parent holds its siblings (the condition picker) and the minimal .h5ad
            parent = parent_run(folder)
            # [data] as the TOML states it (a run per condition opens only with a condition picked); when
            # the file is gone, the run's minimal .h5ad is read instead, from the run folder
            path = SpaceshipConfig.from_toml(toml / _keys.REPRO_TOML if toml.is_dir() else toml).data.adata_path
            data = path if path and Path(os.path.expanduser(path)).exists() else None
        except SpaceTravLRError:
            pass
    files = [h5ad, run_toml, data]
    dirs = [network_dir, folder, parent]
    if data_roots:
        given = default_roots(files, dirs)[:-1]  # without the working directory
        return list(dict.fromkeys([resolve(r) for r in data_roots] + given))
    return default_roots(files, dirs)


def is_within(path: Path, root: Path) -> bool:
    """True when the resolved ``path`` is ``root`` or lies under it."""
    return path == root or root in path.parents


class PathGuard:
    """Checks request paths against the data roots.

    Parameters
    ----------
    roots : sequence of path-like
        Allowed folders (resolved here).
    """

    def __init__(self, roots: Sequence[str | os.PathLike[str]]) -> None:
        self.roots = list(dict.fromkeys(resolve(r) for r in roots))

    def allows(self, path: Path) -> bool:
        return any(is_within(path, r) for r in self.roots)

    def check(self, raw: str | os.PathLike[str], *, what: str, kind: str = "file") -> Path:
        """Resolve ``raw`` and return it when it is an existing ``kind`` (file, dir, any) under a root.

        Raises :class:`ApiError` 400 (empty, NUL byte, too long, wrong kind), 403 (outside the roots) or
        404 (does not exist).
        """
        text = os.fspath(raw)
        if "\x00" in text:
            raise ApiError(400, f"{what}: the path contains a NUL byte")
        if not text.strip():
            raise ApiError(400, f"{what}: empty path")
        if len(text) > MAX_PATH_CHARS:
            raise ApiError(400, f"{what}: path longer than {MAX_PATH_CHARS} characters")
        try:
            p = resolve(text.strip())
        except (OSError, ValueError) as e:
            raise ApiError(400, f"{what}: cannot resolve {text!r} ({e})") from None
        if not self.allows(p):
            raise ApiError(403, f"{what}: {p} is outside the data roots ({', '.join(map(str, self.roots))}); "
                                "restart the viewer with --data-root <folder> to allow it")
        if not p.exists():
            raise ApiError(404, f"{what}: {p} not found")
        if kind == "file" and not p.is_file():
            raise ApiError(400, f"{what}: {p} is not a file")
        if kind == "dir" and not p.is_dir():
            raise ApiError(400, f"{what}: {p} is not a folder")
        return p
