"""Benchmark suite of SpaceTravLR for Python: side-by-side timings against the Python reference
(PyPI ``SpaceTravLR`` 0.1.18) and straightforward NumPy baselines.

Run ``make bench`` or ``python -m benchmarks.run`` (``--quick``, ``--only NAME``, ``--repeats N``);
results go to ``docs/benchmarks.md``, ``docs/benchmarks.json`` and ``docs/benchmark_scaling.png``.
"""
