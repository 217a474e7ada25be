"""Issue 15, items 6, 7, 8 and 12: hostile bundles fail as `BundleError` with bounded memory;
exports stay in the folder they are given."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from builders import fold_ridges, save_chain, spectra
from sklearn.preprocessing import StandardScaler

from nirs4all_store import BundleError, WorkspaceStore
from nirs4all_store.workbench.bundle import load_bundle
from nirs4all_store.workbench.exports import export_file_name


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    with WorkspaceStore(tmp_path / "ws") as store:
        X, y = spectra()
        scaler = StandardScaler().fit(X)
        models = fold_ridges(scaler.transform(X), y, n_folds=2)
        chain_id = save_chain(store, {"0": scaler}, {f"f{i}": m for i, m in enumerate(models)})
        return store.export_chain(chain_id, tmp_path / "model.n4a")


def rewrite(source: Path, target: Path, change: Callable[[str, bytes], bytes], method: int) -> Path:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", method) as dst:
        for name in src.namelist():
            dst.writestr(name, change(name, src.read(name)))
    return target


def test_an_inflated_manifest_is_refused_before_it_is_parsed(bundle: Path, tmp_path: Path) -> None:
    def pad(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["padding"] = "x" * (64 * 1024**2)  # 64 MB of text, ~64 kB deflated
        return json.dumps(manifest).encode()

    bomb = rewrite(bundle, tmp_path / "bomb.n4a", pad, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 2 * 1024**2
    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match=r"manifest\.json inflates to more than"):
            load_bundle(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024**2, f"peak {peak / 1024**2:.0f} MB"


def test_a_deeply_nested_chain_is_a_bundle_error(bundle: Path, tmp_path: Path) -> None:
    def nest(name: str, data: bytes) -> bytes:
        if name != "chain.json":
            return data
        body = json.dumps({k: v for k, v in json.loads(data).items() if k != "steps"})
        return (body[:-1] + ', "steps": ' + "[" * 5000 + "]" * 5000 + "}").encode()

    deep = rewrite(bundle, tmp_path / "deep.n4a", nest, zipfile.ZIP_DEFLATED)
    with pytest.raises(BundleError, match="nested deeper"):
        load_bundle(deep)


def test_damaged_deflate_data_is_a_bundle_error(bundle: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.n4a"
    data = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as zf:
        info = zf.getinfo("chain.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start, start + min(info.compress_size, 64)):
        data[i] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        load_bundle(damaged)


def test_non_pickle_bytes_with_a_matching_hash_are_a_bundle_error(
    bundle: Path, tmp_path: Path
) -> None:
    junk = b"\x80\x05not a pickle at all"
    replaced: dict[str, str] = {}

    def forge(name: str, data: bytes) -> bytes:
        if name.startswith("artifacts/"):
            replaced[name] = hashlib.sha256(junk).hexdigest()
            return junk
        return data

    first = rewrite(bundle, tmp_path / "step.n4a", forge, zipfile.ZIP_STORED)

    def fix_manifest(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        for entry in manifest["artifacts"].values():
            entry["sha256"] = replaced[entry["file"]]
        return json.dumps(manifest).encode()

    forged = rewrite(first, tmp_path / "forged.n4a", fix_manifest, zipfile.ZIP_STORED)
    with pytest.raises(BundleError, match="cannot be deserialised"):
        load_bundle(forged)


def test_a_folder_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is a folder"):
        load_bundle(tmp_path)


def test_export_into_an_existing_folder_writes_inside_it(tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    target.mkdir()
    with WorkspaceStore(tmp_path / "ws") as store:
        X, y = spectra()
        chain_id = save_chain(store, {"0": StandardScaler().fit(X)}, {"f": fold_ridges(X, y)[0]})
        out = store.export_chain(chain_id, target)
    assert out.parent == target.resolve()
    assert out.name == f"{chain_id}.n4a"
    assert not (tmp_path / "deploy.n4a").exists()
    assert load_bundle(out).chain_id == chain_id


@pytest.mark.parametrize("hostile", ["../../X", "/etc/passwd", "a/b\\c", "..", "\x00x", ""])
def test_export_names_from_ids_stay_in_their_folder(tmp_path: Path, hostile: str) -> None:
    name = export_file_name(hostile, ".n4a")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()
    assert name.endswith(".n4a") and not name.startswith(".")
