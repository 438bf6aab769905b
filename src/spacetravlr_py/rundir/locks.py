"""Per-gene lock files so that processes and hosts sharing an output folder split the genes.

``{gene}.lock`` is created complete (written to a private file, then hard-linked into place: ``link``
fails if the lock exists and is atomic on local and NFS filesystems) before a gene is trained and removed
afterwards. It records host, pid and start time. A lock is reclaimed when

* its owner ran on this host and that process no longer exists (e.g. it was SIGKILLed), or
* it is older than ``stale_lock_secs`` (> 0), whoever owned it, or
* it is unreadable (garbled, or half-written by an older version) and older than
  :data:`UNREADABLE_GRACE_SECS`.

Reclaiming renames the stale lock aside and checks that what was renamed is the lock judged stale, so two
processes reclaiming the same lock at once cannot both end up owning the gene.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from .. import _keys
from ..io.atomic import temp_path

HOST = socket.gethostname()
UNREADABLE_GRACE_SECS = 60.0
"""An empty or garbled lock file older than this is stale (its writer died mid-write)."""


def lock_path(out_dir: Path, gene: str) -> Path:
    return out_dir / _keys.LOCK_FILE.format(gene=gene)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_raw(p: Path) -> bytes | None:
    try:
        return p.read_bytes()
    except OSError:
        return None


def _parse(raw: bytes | None) -> dict[str, object] | None:
    if not raw:
        return None
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _read_lock(p: Path) -> dict[str, object] | None:
    return _parse(_read_raw(p))


def owner(out_dir: Path, gene: str) -> dict[str, object] | None:
    """The ``{host, pid, started}`` record of ``gene``'s lock, or None when unlocked or unreadable."""
    return _read_lock(lock_path(out_dir, gene))


def _age(p: Path) -> float | None:
    try:
        return time.time() - p.stat().st_mtime
    except FileNotFoundError:
        return None


def _stale(info: dict[str, object] | None, age: float | None, stale_lock_secs: float) -> bool:
    if age is None:  # vanished meanwhile: nothing to wait for
        return True
    if info is None:
        return age > max(UNREADABLE_GRACE_SECS, stale_lock_secs if stale_lock_secs > 0 else 0.0)
    pid = info.get("pid")
    if info.get("host") == HOST and isinstance(pid, int) and not pid_alive(pid):
        return True
    return stale_lock_secs > 0 and age > stale_lock_secs


def is_stale(p: Path, stale_lock_secs: float) -> bool:
    """True when the lock at ``p`` may be taken over (dead local owner, or older than the limit)."""
    return _stale(_read_lock(p), _age(p), stale_lock_secs)


def _reclaim(p: Path, seen: bytes | None) -> None:
    """Remove the stale lock ``p`` whose content was ``seen``, unless another process replaced it."""
    aside = p.with_name(f"{p.name}.stale-{HOST}-{os.getpid()}")
    try:
        os.rename(p, aside)
    except FileNotFoundError:
        return  # someone else reclaimed it first
    if _read_raw(aside) == seen:
        with contextlib.suppress(FileNotFoundError):
            aside.unlink()
        return
    # between our read and the rename another process reclaimed the lock and took the gene: put its
    # lock back (link fails if a third process created one meanwhile; then both files are its locks)
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.link(aside, p)
    with contextlib.suppress(FileNotFoundError):
        aside.unlink()


def acquire(out_dir: Path, gene: str, stale_lock_secs: float = 0.0) -> str | None:
    """Create ``{gene}.lock`` exclusively, reclaiming it once if stale.

    Returns ``"new"``, ``"reclaimed"`` (a dead or expired owner's lock was taken over: its owner may
    have left temporary files) or None when another process holds the gene.
    """
    p = lock_path(out_dir, gene)
    reclaimed = False
    for _ in range(2):
        if _create_complete(p):
            return "reclaimed" if reclaimed else "new"
        raw = _read_raw(p)
        if _stale(_parse(raw), _age(p), stale_lock_secs):
            _reclaim(p, raw)
            reclaimed = True
            continue
        return None
    return None


def _create_complete(p: Path) -> bool:
    """Create the lock ``p`` with its whole content, or return False if it exists.

    The content is written to a private file first and hard-linked to ``p`` (``link`` fails when ``p``
    exists; atomic on local and NFS filesystems), so a lock is never seen, or left behind by an
    interrupt, half-written. The private file's name is chosen before it exists, so an interrupt at any
    point removes it.
    """
    tmp = temp_path(p, tag=f"{os.getpid()}_")
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            json.dump({"host": HOST, "pid": os.getpid(), "started": time.time()}, fh)
        try:
            os.link(tmp, p)
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: exclusive create, then write
            try:
                fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as fh:
                fh.write(tmp.read_text(encoding="utf-8"))
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def remove_if_stale(out_dir: Path, gene: str, stale_lock_secs: float = 0.0) -> bool:
    """Remove ``gene``'s lock when it is stale (as :func:`acquire` would reclaim it); True if removed."""
    p = lock_path(out_dir, gene)
    raw = _read_raw(p)
    if raw is None or not _stale(_parse(raw), _age(p), stale_lock_secs):
        return False
    _reclaim(p, raw)
    return True


def try_lock(out_dir: Path, gene: str, stale_lock_secs: float = 0.0) -> bool:
    """Create ``{gene}.lock`` exclusively; reclaim it once if stale. True when this process owns it."""
    return acquire(out_dir, gene, stale_lock_secs) is not None


def release(out_dir: Path, gene: str) -> None:
    """Remove ``{gene}.lock`` if this process owns it."""
    p = lock_path(out_dir, gene)
    info = _read_lock(p)
    if info is not None and info.get("host") == HOST and info.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
