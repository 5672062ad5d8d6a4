"""One picture from the command line: whole processes, start to exit, against ``import torch``.

Rows, run interleaved ``--repeats`` times in this order each round (medians reported):

* ``import torch``: ``python -c "import torch"``, the floor of any command that uses torch;
* ``predict .pt``: ``python -m mnistcnn predict CKPT.pt one.png --json``;
* ``predict .onnx``: ``python -m mnistcnn predict model.onnx one.png --json`` (the
  checkpoint exported once beforehand with ``mnistcnn export --format onnx``, not timed);
* ``serve``: ``python -m mnistcnn serve CKPT.pt --port P`` started, then ``POST
  /v1/predict`` with the picture every 20 ms until the first 200: start-up to first answer.

Also printed: whether the ``.onnx`` command imported torch (``sys.modules`` at its exit,
one extra run) and whether both predict commands gave the same label and probability
(to 1e-5). Without ``--checkpoint`` a ``fast`` model is trained first (not timed).
Example::

    python benchmarks/bench_predict_cli.py --checkpoint runs/fast/best.pt --repeats 5 \\
        --json benchmarks/results/predict-cli.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import add_data_args, write_json

PY = sys.executable


def timed(cmd: list[str]) -> tuple[float, str]:
    """(wall seconds from start to exit, stdout) of ``cmd``; raises if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_first_answer(checkpoint: Path, picture: Path, timeout: float = 300) -> float:
    """Seconds from starting ``mnistcnn serve`` to its first 200 answer for ``picture``."""
    port = free_port()
    body = picture.read_bytes()
    t0 = time.perf_counter()
    cmd = [PY, "-m", "mnistcnn", "serve", str(checkpoint), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}")
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/predict",
                data=body,
                headers={"Content-Type": "image/png"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        response.read()
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"serve gave no answer within {timeout} s")
    finally:
        proc.terminate()
        proc.wait(30)


def torch_loaded(args: list[str]) -> bool:
    """Whether ``python -m mnistcnn ARGS`` has torch in ``sys.modules`` when it exits."""
    code = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('TORCH', 'torch' in sys.modules))\n"
        f"sys.argv = ['mnistcnn', *{args!r}]\n"
        "runpy.run_module('mnistcnn', run_name='__main__', alter_sys=True)\n"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True).stdout
    return "TORCH True" in out


def answer(stdout: str) -> tuple[str, float]:
    (row,) = json.loads(stdout)
    return str(row["label"]), float(row["probability"])


def prepare(args: argparse.Namespace, scratch: Path) -> tuple[Path, Path, Path]:
    """(checkpoint, its .onnx export, one picture of a digit)."""
    ckpt = args.checkpoint
    if ckpt is None:
        run = scratch / "fast"
        cmd = [
            PY,
            "-m",
            "mnistcnn",
            "train",
            "--recipe",
            "fast",
            "--no-progress",
            "--out",
            str(run),
        ]
        for flag, value in (("--data-root", args.data_root), ("--mirror", args.mirror)):
            if value:
                cmd += [flag, str(value)]
        timed(cmd)
        ckpt = run / "best.pt"
    onnx = scratch / "model.onnx"
    timed([PY, "-m", "mnistcnn", "export", str(ckpt), "--format", "onnx", "--out", str(onnx)])
    picture = args.picture
    if picture is None:
        picture = scratch / "one.png"
        code = (
            "import numpy as np; from PIL import Image; from mnistcnn import data as d\n"
            f"x, y = d.load_arrays('mnist', False, root={args.data_root!r}, "
            f"mirror={args.mirror!r})\n"
            f"Image.fromarray(np.asarray(x[0])).save({str(picture)!r})\n"
        )
        subprocess.run([PY, "-c", code], check=True)
    return ckpt, onnx, picture


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the rounds, print medians and ratios, write ``--json``; returns the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, help="a .pt (default: train the fast recipe)")
    p.add_argument("--picture", type=Path, help="one picture (default: MNIST test image 0)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds (5)")
    p.add_argument("--no-serve", action="store_true", help="skip the serve row")
    add_data_args(p)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        ckpt, onnx, picture = prepare(args, Path(tmp))
        rows: dict[str, list[float]] = {"import torch": [], "predict .pt": [], "predict .onnx": []}
        if not args.no_serve:
            rows["serve"] = []
        answers: dict[str, tuple[str, float]] = {}
        for _ in range(args.repeats):
            rows["import torch"].append(timed([PY, "-c", "import torch"])[0])
            for name, model in (("predict .pt", ckpt), ("predict .onnx", onnx)):
                seconds, out = timed(
                    [PY, "-m", "mnistcnn", "predict", str(model), str(picture), "--json"]
                )
                rows[name].append(seconds)
                answers[name] = answer(out)
            if not args.no_serve:
                rows["serve"].append(serve_first_answer(ckpt, picture))
        onnx_torch = torch_loaded(["predict", str(onnx), str(picture)])
    medians = {k: statistics.median(v) for k, v in rows.items()}
    base = medians["import torch"]
    (pt_label, pt_p), (ox_label, ox_p) = answers["predict .pt"], answers["predict .onnx"]
    result = {
        "runs": rows,
        "median_s": medians,
        "ratio_to_import_torch": {k: v / base for k, v in medians.items()},
        "onnx_imports_torch": onnx_torch,
        "answers": answers,
        "same_answer": pt_label == ox_label and abs(pt_p - ox_p) <= 1e-5,
        "load_average": os.getloadavg(),
    }
    print(f"{'command':<16} {'median s':>9} {'x import torch':>15}   (runs)")
    for k, v in medians.items():
        runs = " ".join(f"{s:.2f}" for s in rows[k])
        print(f"{k:<16} {v:>9.2f} {v / base:>15.2f}   ({runs})")
    print(
        f".onnx imported torch: {onnx_torch}; answers .pt {pt_label} p={pt_p:.6f}, "
        f".onnx {ox_label} p={ox_p:.6f}: same (1e-5): {result['same_answer']}; "
        f"load average {result['load_average'][0]:.1f}"
    )
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
