"""glibc keeps the memory a training step frees for the next step (engine/allocator.py)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: A training step's pattern: feature maps of 150-900 kB written, three alive at a time,
#: 2,400 of them; print the minor page faults it took.
PROBE = """
import resource, sys
sys.path.insert(0, {src!r})
import numpy as np
if {apply}:
    from mnistcnn.engine.allocator import keep_freed_memory
    assert keep_freed_memory()
sizes = [150_000, 900_000, 400_000, 220_000, 600_000, 300_000] * 4
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    alive = []
    for size in sizes:
        block = np.empty(size // 8)
        block.fill(1.0)
        alive.append(block)
        if len(alive) > 3:
            alive.pop(0)
    del alive
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(apply: bool) -> int:
    code = PROBE.format(src=str(SRC), apply=apply)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc's mallopt",
)
def test_freed_blocks_are_reused_instead_of_mapped_again():
    """Without the thresholds the blocks are mapped and zero-filled again and again (47,466
    page faults measured); with them the heap keeps them (589)."""
    mapped_each_time, reused = _faults(apply=False), _faults(apply=True)
    assert mapped_each_time > 20_000
    assert reused < 3_000


def test_keep_freed_memory_answers_the_same_on_every_call():
    from mnistcnn.engine.allocator import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() is first
    assert first is (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc")
