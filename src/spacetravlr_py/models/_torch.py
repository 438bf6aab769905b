"""PyTorch access for full mode: the optional import, the device choice and the thread policy.

torch is an optional extra (``pip install 'spacetravlr-py[full]'``) and is imported only here, inside
functions, so that ``spacetravlr --help`` and seed mode never load it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError

EXTRA_HINT = "pip install 'spacetravlr-py[full]'"
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
TORCH_THREADS = 1
"""Intra-op threads of every CNN fit. Fixed (not scaled with the cores): PyTorch's CPU reductions split
work by thread count, so any other policy would make betas depend on ``--parallel``. Full mode uses
the cores through worker processes (``--parallel N``), one gene each, which is also the faster way to
run these small networks."""


def require_torch(what: str = "--training-mode full") -> Any:
    """Import and return ``torch``, or raise one line naming the extra to install."""
    try:
        import torch
    except ImportError:
        raise ConfigError(f"{what} needs PyTorch, which is not installed; install the full-mode extra: "
                          f"{EXTRA_HINT}") from None
    return torch


def resolve_device(name: str, *, source: str = "[execution].device") -> str:
    """``auto`` → ``cuda`` when a CUDA device is present, else ``cpu``; explicit devices are checked.

    Raises
    ------
    ConfigError
        Unknown name, or a device this machine does not have (one line).
    """
    if name not in DEVICES:
        raise ConfigError(f"{source} = \"{name}\": expected one of " + ", ".join(f'"{d}"' for d in DEVICES))
    torch = require_torch()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{source} = \"cuda\" but PyTorch sees no CUDA device on this machine "
                          f"(torch {torch.__version__}); use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{source} = \"mps\" but Apple's Metal backend is not available here; "
                          "use --device cpu or auto")
    if name == "cuda":
        # cuBLAS is deterministic only with a fixed workspace, which must be set before CUDA starts
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return name


@contextlib.contextmanager
def torch_runtime(threads: int = TORCH_THREADS) -> Iterator[Any]:
    """Inside the block: ``threads`` intra-op threads and deterministic algorithms; restored after."""
    torch = require_torch()
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(max(1, int(threads)))
    # warn_only: CUDA has ops without a deterministic kernel (adaptive pooling backward); CPU has none
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation.*")
            yield torch
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
