"""The built front end: files served only from the static folder, nothing that resolves outside it."""

from __future__ import annotations

import html
import os
from pathlib import Path

from .. import _keys
from ._errors import ApiError
from .security import is_within

BUILD_HINT = "cd web && npm ci && npm run build"


def default_static_dir() -> Path:
    """``spacetravlr_py/viewer/static`` (filled by the front end's Vite build)."""
    return Path(__file__).resolve().parent / _keys.VIEWER_STATIC_DIR


def static_file(static_dir: Path, rel: str) -> Path:
    """The file ``rel`` inside ``static_dir``; ApiError 403 when it resolves outside, 404 when absent."""
    if "\x00" in rel:
        raise ApiError(400, "path contains a NUL byte")
    root = Path(os.path.realpath(static_dir))
    target = Path(os.path.realpath(root / rel.lstrip("/")))
    if not is_within(target, root):
        raise ApiError(403, "path outside the static folder")
    if not target.is_file():
        raise ApiError(404, f"not found: /{html.escape(rel[:200])}")
    return target


def placeholder_page(static_dir: Path) -> str:
    """The page ``/`` answers when the front end is not built."""
    where = html.escape(str(static_dir))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>spatial_viewer</title></head>
<body style="font-family: sans-serif; max-width: 48em; margin: 3em auto">
<h1>spatial_viewer</h1>
<p>The API is running (<a href="/api/meta">/api/meta</a>, <a href="/api/openapi.json">/api/openapi.json</a>),
but the front end is not built: <code>{where}</code> has no <code>{_keys.INDEX_HTML}</code>.</p>
<p>Build it from a source checkout with <code>{BUILD_HINT}</code> (this fills
<code>src/spacetravlr_py/viewer/static/</code>), or start the viewer with <code>--static-dir</code> pointing
to a built bundle.</p>
</body></html>
"""
