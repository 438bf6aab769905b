"""Run one benchmark side in a fresh interpreter: ``python -m benchmarks.worker '{"factory": ...}'``.

``factory`` is ``"module:function"``; ``function(**params)`` prepares its inputs and returns a
zero-argument callable. The worker calls it ``calls`` times and prints one JSON line with the call
times and the process's peak RSS (after setup, and overall).
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time


def main() -> None:
    spec = json.loads(sys.argv[1])
    mod, fn = spec["factory"].split(":")
    run = getattr(importlib.import_module(mod), fn)(**spec.get("params", {}))
    setup_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(int(spec.get("calls", 2))):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"t_calls_s": times, "maxrss_setup_kb": setup_kb,
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    main()
