"""Atomic file writes: write to a temporary file in the destination folder, then rename.

A crash, a signal or SIGKILL can leave at most a ``.tmp`` file behind, never a truncated output.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+" + re.escape(TMP_SUFFIX) + "$")


def temp_path(dest: str | os.PathLike[str], *, tag: str = "") -> Path:
    """The temporary name of ``dest`` (not created): ``.{name}.{tag}{random}.tmp`` beside it.

    Every temporary file of the package is named this way (atomic writes, lock creation), so that
    :func:`temp_target` can tell which file a leftover belonged to. ``tag`` may hold ``[A-Za-z0-9_]``.
    """
    d = Path(dest)
    return d.parent / f".{d.name}.{tag}{secrets.token_hex(4)}{TMP_SUFFIX}"


def temp_target(tmp: str | os.PathLike[str]) -> Path | None:
    """The file a temporary file named by :func:`temp_path` was meant to become (None if not one)."""
    t = Path(tmp)
    m = _TMP_NAME.match(t.name)
    return t.parent / m.group("name") if m else None


def temporaries_of(dest: str | os.PathLike[str]) -> list[Path]:
    """Existing temporary files of ``dest`` (left by a killed writer)."""
    import glob

    d = Path(dest)
    return [p for p in d.parent.glob(f".{glob.escape(d.name)}.*{TMP_SUFFIX}") if temp_target(p) == d]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On any exception (Ctrl-C included, whenever it arrives) the temporary file is removed and ``path``
    is untouched. The temporary file is created with the mode ``open()`` would give (0666 less the
    umask), so finished files of a shared run folder stay readable by its other users.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_path: Path | None = None
    try:
        while True:
            # the name is known before the file exists, so an interrupt at any point can clean it up
            tmp_path = temp_path(dest)
            try:
                os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:
                continue
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, dest)
    except BaseException:
        if tmp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
        raise


def atomic_write(path: str | os.PathLike[str], writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result onto ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda p: p.write_bytes(data))
