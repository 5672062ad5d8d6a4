"""What the command line does to its own process: OpenMP's busy-wait and the shutdown.

Each test runs the real ``python -m mnistcnn`` in a fresh interpreter, with an exit
handler registered before the command line starts (so it runs after the command line's
own: exit handlers run last-registered first) that prints what it finds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

#: Run ``mnistcnn ARGS``; at exit print GOMP_SPINCOUNT and how many objects gc froze.
PROBE = """
import atexit, gc, json, os, runpy, sys
def report():
    print("PROBE " + json.dumps({"spin": os.environ.get("GOMP_SPINCOUNT"),
                                 "frozen": gc.get_freeze_count()}))
atexit.register(report)
sys.argv = ["mnistcnn", *sys.argv[1:]]
runpy.run_module("mnistcnn", run_name="__main__", alter_sys=True)
"""


def probe(args: list[str], env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("PROBE "))
    return json.loads(line[len("PROBE ") :])


def test_openmp_threads_spin_briefly_unless_the_user_said_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    from mnistcnn.cli import OPENMP_SPIN_COUNT

    assert probe(["--version"], env)["spin"] == str(OPENMP_SPIN_COUNT) == "10000"
    assert probe(["--version"], {**env, "GOMP_SPINCOUNT": "300000"})["spin"] == "300000"


def test_the_objects_alive_at_exit_are_frozen_out_of_the_last_collections():
    """A command that imported torch: its hundreds of thousands of objects are frozen
    before the interpreter's shutdown collections (0.7 s -> 0.2 s after the last line)."""
    found = probe(["models"], dict(os.environ))
    assert isinstance(found["frozen"], int) and found["frozen"] > 100_000
