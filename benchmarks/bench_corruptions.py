"""Seconds to build each of MNIST-C's 15 corrupted copies of a test split, on an empty cache.

Each corruption goes through ``mnistcnn.data.corruption_cache.corrupted_images``
(the path ``mnistcnn evaluate --corruptions`` takes) into a fresh temporary
cache folder, then is read back once from that cache (checksum checked). The
clean test split comes from ``--data-root``/``--mirror`` as usual. Prints one
row per corruption (build seconds, read seconds, the copy's SHA-256) and the
total; ``--threads`` sets torch's and NumPy's threads (default 1).

Example::

    OMP_NUM_THREADS=1 python benchmarks/bench_corruptions.py --mirror /work/shared/datasets \\
        --json benchmarks/results/corruptions-1thread.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import add_data_args, write_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(p)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--limit", type=int, help="only the first N test images")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from mnistcnn import data as mdata
    from mnistcnn.data.corruption_cache import corrupted_images
    from mnistcnn.data.corruptions import CORRUPTIONS

    torch.set_num_threads(args.threads)
    images, _ = mdata.load_arrays(
        args.dataset, train=False, root=args.data_root, mirror=args.mirror
    )
    x = images.numpy()[: args.limit]
    rows = []
    with tempfile.TemporaryDirectory() as cache_root:
        for name in CORRUPTIONS:
            kw = {"dataset": args.dataset, "root": Path(cache_root), "seed": 0}
            built = corrupted_images(x, name, **kw)
            start = time.perf_counter()
            again = corrupted_images(x, name, **kw)
            read = time.perf_counter() - start
            assert built.built and not again.built and built.sha256 == again.sha256
            rows.append({"corruption": name, "build_s": built.seconds, "read_s": read,
                         "sha256": built.sha256})  # fmt: skip
            print(f"{name:15s} build {built.seconds:6.2f} s  read {read:5.2f} s  "
                  f"sha256 {built.sha256[:12]}", flush=True)  # fmt: skip
    total = sum(r["build_s"] for r in rows)
    print(f"{len(x)} images, {args.threads} thread(s): {total:.1f} s to build all 15")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    write_json(args.json, {"images": len(x), "threads": args.threads, "total_build_s": total,
                           "load_average_1min": load, "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
