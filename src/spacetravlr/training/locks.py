"""Per-gene lock files so that processes and hosts sharing an output folder split the genes.

``{gene}.lock`` is created with ``O_CREAT | O_EXCL`` (atomic on local and NFSv3+ filesystems) before a
gene is trained and removed afterwards. It records host, pid and start time. A lock is reclaimed when

* its owner ran on this host and that process no longer exists (e.g. it was SIGKILLed), or
* it is older than ``stale_lock_secs`` (> 0), whoever owned it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from .. import _keys

HOST = socket.gethostname()


def lock_path(out_dir: Path, gene: str) -> Path:
    return out_dir / _keys.LOCK_FILE.format(gene=gene)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_lock(p: Path) -> dict[str, object] | None:
    try:
        return json.loads(p.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return None


def is_stale(p: Path, stale_lock_secs: float) -> bool:
    """True when the lock at ``p`` may be taken over (dead local owner, or older than the limit)."""
    info = _read_lock(p)
    if info and info.get("host") == HOST and isinstance(info.get("pid"), int):
        if not _pid_alive(int(info["pid"])):  # type: ignore[arg-type]
            return True
    if stale_lock_secs > 0:
        try:
            age = time.time() - p.stat().st_mtime
        except FileNotFoundError:
            return True
        return age > stale_lock_secs
    return False


def try_lock(out_dir: Path, gene: str, stale_lock_secs: float = 0.0) -> bool:
    """Create ``{gene}.lock`` exclusively; reclaim it once if stale. True when this process owns it."""
    p = lock_path(out_dir, gene)
    for _ in range(2):
        try:
            fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if is_stale(p, stale_lock_secs):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                continue
            return False
        with os.fdopen(fd, "w") as fh:
            json.dump({"host": HOST, "pid": os.getpid(), "started": time.time()}, fh)
        return True
    return False


def release(out_dir: Path, gene: str) -> None:
    """Remove ``{gene}.lock`` if this process owns it."""
    p = lock_path(out_dir, gene)
    info = _read_lock(p)
    if info is None or (info.get("host") == HOST and info.get("pid") == os.getpid()):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
