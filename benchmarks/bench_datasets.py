"""Benchmark: loading a ~100 MB nirs4all dataset folder (Xcal ~100 MB of `;`-separated text).

Each reader runs in a fresh process (`resource.getrusage` peak RSS is per process), on the
same folder generated once: `load_nirs4all_folder` (pyarrow.csv) and the exact Python parser
it falls back to for unusual files. Prints time and peak memory (minus the interpreter with
numpy/pyarrow imported, measured the same way) of each.

    python benchmarks/bench_datasets.py [--rows 5000] [--wavelengths 1100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np, pyarrow, pyarrow.csv
from nirs4all_store.workbench.training import dataset_files
from nirs4all_store.workbench.training.datasets import load_nirs4all_folder
folder, how = Path(sys.argv[1]), sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if how == "pyarrow":
    ds = load_nirs4all_folder(folder)
    shape = ds.X_train.shape
elif how == "exact":
    X, _, _ = dataset_files.parse_exact(folder / "Xcal.csv", x_file=True)
    y, _, _ = dataset_files.parse_exact(folder / "Ycal.csv", x_file=False)
    shape = X.shape
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024, "base_mb": base / 1024,
                  "shape": list(shape)}))
"""


def write_folder(folder: Path, rows: int, wavelengths: int) -> int:
    from nirs4all_store.workbench.training.dataset_files import encode_table

    rng = np.random.default_rng(0)
    wl = np.linspace(1000.0, 2500.0, wavelengths)
    header = [repr(w) for w in wl.tolist()]
    with (folder / "Xcal.csv").open("wb") as fh:
        fh.write((";".join(header) + "\n").encode())
        for start in range(0, rows, 500):  # in blocks: the generator itself stays small
            block = rng.normal(0.5, 0.1, size=(min(500, rows - start), wavelengths))
            fh.write(encode_table(block, None, compress=False))
    y = rng.normal(12.0, 2.0, size=(rows, 1))
    (folder / "Ycal.csv").write_bytes(encode_table(y, ["y"], compress=False))
    return (folder / "Xcal.csv").stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--wavelengths", type=int, default=1100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        size = write_folder(folder, args.rows, args.wavelengths)
        print(f"Xcal.csv: {size / 1e6:.0f} MB ({args.rows} x {args.wavelengths})")
        for how in ("pyarrow", "exact"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(folder), how],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(out.stdout)
            print(
                f"{how:8s} {r['seconds']:6.2f} s   peak RSS {r['peak_mb']:7.0f} MB "
                f"({r['peak_mb'] - r['base_mb']:.0f} MB above the imports)   shape {r['shape']}"
            )


if __name__ == "__main__":
    main()
