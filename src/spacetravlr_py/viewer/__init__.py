"""``spatial_viewer``: the tissue, its betadata and live perturbations in the browser (SPEC §9).

* :mod:`.cli` — the program (``spatial_viewer`` / ``spatial-viewer`` / ``spacetravlr serve``);
* :mod:`.app` — the FastAPI application (``create_app``), routes in :mod:`.routes_data`,
  :mod:`.routes_betadata`, :mod:`.routes_perturb`, static files in :mod:`.static_files`;
* :mod:`.state` — the loaded dataset (background loading) and :mod:`.jobs` — perturbation jobs off the
  event loop, cancellable;
* :mod:`.payloads` and :mod:`.inspector` — pure functions from arrays to response bytes / JSON;
* :mod:`.security` — the data roots every path must lie under.

FastAPI and uvicorn (the ``viewer`` extra) are imported only when the server starts. The HTTP contract
is documented in ``docs/viewer.md``.
"""

from __future__ import annotations
