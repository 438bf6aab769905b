"""Persistent runner for the reference harness (executed by the reference venv's python, not ours).

Reads one JSON request per stdin line (``{"argv": [...]}``), runs ``harness.main(argv)`` in this
process (so numba kernels are compiled once per session, not once per call), and answers with one
line ``@@REFSESSION@@ {json}`` on stdout carrying the harness's JSON record, the wall time of the call
and this process's peak RSS so far. Anything else the reference prints is passed through and ignored.

Usage: <ref-venv>/bin/python _ref_driver.py HARNESS_DIR
"""

import contextlib
import io
import json
import os
import resource
import sys
import time
import traceback

MARK = "@@REFSESSION@@ "


def main() -> None:
    sys.path.insert(0, sys.argv[1])
    import harness  # the reference harness (../shared/tools/reference/harness.py)

    out = sys.stdout
    out.write(MARK + json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        buf = io.StringIO()
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(buf):
                harness.main(req["argv"])
            lines = [x for x in buf.getvalue().splitlines() if x.strip()]
            resp = {"ok": True, "record": json.loads(lines[-1])}
        except BaseException:
            resp = {"ok": False, "error": traceback.format_exc(limit=8), "stdout": buf.getvalue()[-4000:]}
        resp["wall_s"] = time.perf_counter() - t0
        resp["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out.write(MARK + json.dumps(resp, default=str) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
