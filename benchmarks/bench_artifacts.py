"""What does checking the SHA-256 on every `load_artifact` cost? The issue asks for the check
to be "cheap enough to do always: measure". Compares `load_artifact` (row lookup, read, hash,
unpickle) with the same load minus the hash, for small to large artifacts, and reports save
cost (serialise, hash, atomic write with fsync) alongside.

    python benchmarks/bench_artifacts.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nirs4all_store import WorkspaceStore
from nirs4all_store.artifacts import files


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: page cache, imports
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def objects() -> dict[str, Any]:
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 200)), rng.normal(size=300)
    return {
        "StandardScaler (200 features)": StandardScaler().fit(X),
        "PLSRegression (10 comp.)": PLSRegression(n_components=10).fit(X, y),
        "RandomForest (100 trees)": RandomForestRegressor(100, random_state=0).fit(X, y),
        "float64 array 50 MB": rng.normal(size=50 * 1024 * 1024 // 8),
    }


def load_without_hash(store: WorkspaceStore, artifact_id: str) -> Any:
    """`load_artifact` minus the SHA-256 check: the baseline the check is measured against."""
    row = store.get_artifact(artifact_id)
    assert row is not None
    data = store.vault.files.path(row["artifact_path"]).read_bytes()
    return files.deserialize(data, row["format"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="n4a-bench-artifacts-"))
    try:
        with WorkspaceStore(base / "ws") as store:
            print(
                f"{'artifact':30s} {'size':>9s} {'save':>9s} {'load':>9s} "
                f"{'no hash':>9s} {'sha256':>9s} {'check share':>11s}"
            )
            for name, obj in objects().items():
                save_s = median_time(lambda obj=obj: store.save_artifact(obj), 1)
                artifact_id = store.save_artifact(obj)
                path = store.get_artifact_path(artifact_id)
                size = path.stat().st_size
                data = path.read_bytes()
                checked = median_time(lambda a=artifact_id: store.load_artifact(a), args.repeat)
                plain = median_time(lambda a=artifact_id: load_without_hash(store, a), args.repeat)
                digest = median_time(lambda d=data: files.sha256_bytes(d), args.repeat)
                print(
                    f"{name:30s} {size / 1024:7.0f}KB {save_s * 1000:7.1f}ms "
                    f"{checked * 1000:7.1f}ms {plain * 1000:7.1f}ms {digest * 1000:7.2f}ms "
                    f"{100 * digest / checked:10.1f}%"
                )
            print(
                "save: re-save of existing bytes (serialise + hash + hash of the existing file). "
                "check share: SHA-256 time / full load_artifact time."
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
