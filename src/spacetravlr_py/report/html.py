"""Building blocks of the self-contained HTML reports: tables, inlined figures, sections, the page.

Every figure is embedded as a base64 PNG (``<img src="data:image/png;base64,...">``) so a report is one
file that opens offline: no script, stylesheet, font or image is fetched from anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:72rem;margin:0 auto;padding:1.5rem 2rem 4rem;background:#fff}
h1{font-size:1.5rem;margin:.2rem 0 .4rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:2px solid #e4e4e4;
padding-bottom:.2rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}
table{border-collapse:collapse;margin:.4rem 0 .8rem;font-size:.9rem}
td,th{padding:.2rem .6rem;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{background:#f4f4f4;font-size:.85rem}code{padding:0 .2rem}pre{padding:.6rem;overflow-x:auto}
figure{margin:.6rem 0 1rem;display:inline-block;vertical-align:top}figure img{max-width:100%;height:auto;
border:1px solid #eee}figcaption{font-size:.85rem;color:#555;max-width:40rem}
nav{font-size:.9rem;margin:.6rem 0 1rem}nav a{margin-right:.8rem}
.warn{background:#fff6e0;border-left:4px solid #e0a000;padding:.3rem .7rem;margin:.3rem 0}
.muted{color:#777}.cols{display:flex;flex-wrap:wrap;gap:1rem}details{margin:.3rem 0}"""


def esc(x: object) -> str:
    """HTML-escaped ``str(x)``."""
    return html.escape(str(x))


def fmt(x: object, digits: int = 4) -> str:
    """A table cell: numbers to ``digits`` significant digits, NaN/None as an em dash."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "—"
        return f"{x:.{digits}g}"
    try:  # numpy scalars
        import numpy as np

        if isinstance(x, np.integer):
            return f"{int(x):,}"
        if isinstance(x, np.floating):
            return fmt(float(x), digits)
    except ImportError:  # pragma: no cover
        pass
    return str(x)


def _is_num(x: object) -> bool:
    try:
        import numpy as np

        return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
    except ImportError:  # pragma: no cover
        return isinstance(x, (int, float)) and not isinstance(x, bool)


def table(rows: Sequence[Sequence[object]], head: Sequence[str] | None = None, *, digits: int = 4,
          cls: str = "") -> str:
    """An HTML table; numeric cells are right-aligned and formatted by :func:`fmt`."""
    th = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>" if head else ""
    body = []
    for r in rows:
        cells = [f"<td class='num'>{esc(fmt(c, digits))}</td>" if _is_num(c) else f"<td>{esc(fmt(c, digits))}</td>"
                 for c in r]
        body.append("<tr>" + "".join(cells) + "</tr>")
    c = f" class='{cls}'" if cls else ""
    return f"<table{c}>{th}{''.join(body)}</table>"


def frame_table(df: Any, *, digits: int = 4, max_rows: int | None = None) -> str:
    """A pandas DataFrame as :func:`table` (the first ``max_rows`` rows)."""
    d = df if max_rows is None else df.head(max_rows)
    rows = [[None if _missing(v) else v for v in rec] for rec in d.itertuples(index=False, name=None)]
    return table(rows, [str(c) for c in d.columns], digits=digits)


def _missing(v: object) -> bool:
    try:
        return v is None or (isinstance(v, float) and math.isnan(v))
    except TypeError:  # pragma: no cover
        return False


def png_bytes(fig: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    from .. import plotting

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plotting._pyplot().close(fig)
    return buf.getvalue()


@dataclass
class Figures:
    """Collects a report's figures: each is inlined in the page and, with ``folder``, also written as
    ``report_{name}.png`` there (kept for inspection)."""

    folder: Path | None = None
    written: dict[str, Path] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    def img(self, fig: Any, name: str, caption: str, *, width: int | None = None) -> str:
        """``<figure>`` holding ``fig`` as a base64 PNG with ``caption``."""
        from .. import _keys

        data = png_bytes(fig)
        self.names.append(name)
        if self.folder is not None:
            from ..io.atomic import atomic_write_bytes

            p = self.folder / _keys.REPORT_FIGURE.format(name=name)
            self.written[name] = atomic_write_bytes(p, data)
        w = f" width='{int(width)}'" if width else ""
        b64 = base64.b64encode(data).decode("ascii")
        return (f"<figure id='fig-{esc(name)}'><img alt='{esc(caption)}' src='data:image/png;base64,{b64}'{w}>"
                f"<figcaption>{esc(caption)}</figcaption></figure>")


@dataclass
class Section:
    """One ``<section>`` of a report: its anchor, title and HTML body."""

    anchor: str
    title: str
    body: str


def page(title: str, intro: str, sections: Sequence[Section]) -> str:
    """The whole document: title, a table of contents, the sections."""
    nav = "".join(f"<a href='#{esc(s.anchor)}'>{esc(s.title)}</a>" for s in sections)
    body = "".join(f"<section id='{esc(s.anchor)}'><h2>{esc(s.title)}</h2>{s.body}</section>" for s in sections)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width,initial-scale=1'><title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body><main><h1>{esc(title)}</h1>{intro}<nav>{nav}</nav>{body}</main></body></html>")


def warn(text: str) -> str:
    """A highlighted warning line."""
    return f"<div class='warn'>{esc(text)}</div>"


def path_code(p: str | os.PathLike[str]) -> str:
    return f"<code>{esc(os.fspath(p))}</code>"
