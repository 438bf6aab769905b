"""Reports: the HTML report of a training run and the files a perturbation leaves beside its output.

* :func:`write_run_summary` / :func:`build_run_summary` / :func:`run_summary_html` — one self-contained HTML
  page about a run (``spacetravlr run-summary``; ``GET /api/run/report`` of the viewer), built from
  :func:`gather_run_facts`;
* :func:`write_field_outputs` / :func:`save_field` — a perturbation's transition field and its figures.

>>> import spacetravlr_py as st
>>> st.report.write_run_summary("runs/a")   # doctest: +SKIP
"""

from __future__ import annotations

from .facts import RunFacts, gather_run_facts, parse_gene_log
from .fields import save_field, write_field_outputs
from .run_summary import build_run_summary, run_summary_html, write_run_summary

__all__ = ["RunFacts", "build_run_summary", "gather_run_facts", "parse_gene_log", "run_summary_html", "save_field",
           "write_field_outputs", "write_run_summary"]
