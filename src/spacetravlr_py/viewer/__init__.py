"""``spatial_viewer``: the tissue, its betadata and live perturbations in the browser (SPEC §9).

* :mod:`.cli` — the program (``spatial_viewer`` / ``spatial-viewer`` / ``spacetravlr serve``);
* :mod:`.app` — the FastAPI application (``create_app``), routes in :mod:`.routes_data`,
  :mod:`.routes_betadata`, :mod:`.routes_perturb`, :mod:`.routes_run` (the run's report), :mod:`.routes_view`,
  static files in :mod:`.static_files`;
* :mod:`.state` — what is loaded (in the background, two stages) and the last perturbation result;
  :mod:`.dataset` — the tissue, its derived arrays and the run; :mod:`.meta` — the ``meta`` payload;
* :mod:`.jobs` — perturbation jobs off the event loop, one at a time, cancellable; :mod:`.work` — what
  they compute (scopes, perturbations, fields, exports, interactions);
* :mod:`.payloads` and :mod:`.inspector` — pure functions from arrays to response bytes / JSON;
  :mod:`.schemas` — the request bodies (pydantic);
* :mod:`.security` — the data roots every path must lie under.

FastAPI and uvicorn (the ``viewer`` extra) are imported only when the server starts. The HTTP contract
is documented in ``docs/viewer.md``.
"""

from __future__ import annotations
