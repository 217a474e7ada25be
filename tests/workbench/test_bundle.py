"""Portable .n4a bundles: export, verification, and prediction far from the workspace."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
from builders import fold_ridges, save_chain, spectra
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import nirs4all_store
from nirs4all_store import BundleError, WorkspaceStore
from nirs4all_store.workbench.bundle import BUNDLE_FORMAT_VERSION, Bundle, load_bundle, predict


def regression_chain(store: WorkspaceStore) -> str:
    X, y = spectra()
    scaler = StandardScaler().fit(X)
    models = fold_ridges(scaler.transform(X), y)
    return save_chain(store, {"0": scaler}, {f"fold_{i}": m for i, m in enumerate(models)})


def rewrite(
    bundle: Path,
    target: Path,
    change: Callable[[str, bytes], tuple[str, bytes] | None],
    extra: dict[str, bytes] | None = None,
) -> Path:
    """Copy a bundle member by member through `change` (None drops a member)."""
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            changed = change(name, src.read(name))
            if changed is not None:
                dst.writestr(changed[0], changed[1])
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return target


def test_bundle_predicts_like_replay_after_the_workspace_is_deleted(
    store: WorkspaceStore, workspace: Path, tmp_path: Path
) -> None:
    chain_id = regression_chain(store)
    Xnew, _ = spectra(11, seed=3)
    replayed = store.replay_chain(chain_id, Xnew)
    out = store.export_chain(chain_id, tmp_path / "deploy" / "model")
    assert out == (tmp_path / "deploy" / "model.n4a").resolve() and out.is_file()
    store.close()
    shutil.rmtree(workspace)

    np.testing.assert_allclose(predict(out, Xnew), replayed, rtol=0, atol=1e-12)
    bundle = load_bundle(out)
    assert isinstance(bundle, Bundle)
    for _ in range(2):  # load once, predict many times
        np.testing.assert_allclose(bundle.predict(Xnew), replayed, rtol=0, atol=1e-12)
    np.testing.assert_allclose(predict(bundle, Xnew[:3]), replayed[:3], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"X has 39 features but chain .* expects 40"):
        bundle.predict(Xnew[:, :-1])


def test_manifest_describes_the_chain_and_hashes_every_artifact(
    store: WorkspaceStore, tmp_path: Path
) -> None:
    chain_id = regression_chain(store)
    chain = store.get_chain(chain_id)
    assert chain is not None
    out = store.export_chain(chain_id, tmp_path / "m.n4a")
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        stored_chain = json.loads(zf.read("chain.json"))
        members = set(zf.namelist())
        artifact_bytes = {name: zf.read(name) for name in members if name.startswith("artifacts/")}
    used = {chain["shared_artifacts"]["0"], *chain["fold_artifacts"].values()}
    assert set(manifest["artifacts"]) == used
    assert members == {
        "manifest.json",
        "chain.json",
        *(e["file"] for e in manifest["artifacts"].values()),
    }
    for artifact_id, entry in manifest["artifacts"].items():
        assert hashlib.sha256(artifact_bytes[entry["file"]]).hexdigest() == entry["sha256"]
        assert entry["sha256"] == store.get_artifact(artifact_id)["content_hash"]  # type: ignore[index]
    assert manifest["format_version"] == BUNDLE_FORMAT_VERSION
    assert manifest["chain_id"] == chain_id
    assert manifest["model_class"] == "Model"
    assert manifest["fold_strategy"] == "per_fold"
    assert manifest["task_type"] == "regression"
    assert manifest["n_features"] == 40
    assert manifest["created_at"]
    assert manifest["versions"]["scikit-learn"] == sklearn.__version__
    assert manifest["versions"]["numpy"] == np.__version__
    assert manifest["versions"]["nirs4all_store"] == nirs4all_store.__version__
    assert set(manifest["versions"]) >= {"python", "numpy", "scikit-learn", "nirs4all_store"}
    for key in ("steps", "model_step_idx", "fold_artifacts", "shared_artifacts"):
        assert stored_chain[key] == chain[key]


def test_bare_name_means_the_current_folder(
    store: WorkspaceStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One path rule (issue 18): a bare file name means the current folder, as in predict()
    and the CLI's -o; the absolute path is returned."""
    monkeypatch.chdir(tmp_path)
    chain_id = regression_chain(store)
    out = store.export_chain(chain_id, "my_model")
    assert out == tmp_path / "my_model.n4a" and out.is_absolute() and out.is_file()
    with pytest.raises(ValueError, match="unsupported bundle format"):
        store.export_chain(chain_id, "x.zip", format="zip")


def test_classification_bundle_gives_labels_and_probabilities(
    store: WorkspaceStore, tmp_path: Path
) -> None:
    X, y = spectra(90)
    labels = (y > np.median(y)).astype(int)
    pipe = Pipeline([("minmax", MinMaxScaler()), ("logreg", LogisticRegression(max_iter=2000))])
    models = [clone(pipe).fit(X[i::2], labels[i::2]) for i in range(2)]
    chain_id = save_chain(
        store,
        {},
        {"fold_0": models[0], "fold_1": models[1]},
        model_step_idx=0,
        task_type="classification",
    )
    out = store.export_chain(chain_id, tmp_path / "clf")
    bundle = load_bundle(out)
    np.testing.assert_allclose(
        bundle.predict(X[:7], proba=True),
        store.replay_chain(chain_id, X[:7], proba=True),
        atol=1e-12,
    )
    assert bundle.predict(X[:7]).tolist() == store.replay_chain(chain_id, X[:7]).tolist()


def test_tampered_artifact_is_refused(store: WorkspaceStore, tmp_path: Path) -> None:
    out = store.export_chain(regression_chain(store), tmp_path / "ok.n4a")

    def flip(name: str, data: bytes) -> tuple[str, bytes]:
        if name.startswith("artifacts/") and not flipped:
            flipped.append(name)
            middle = len(data) // 2
            return name, data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]
        return name, data

    flipped: list[str] = []
    bad = rewrite(out, tmp_path / "tampered.n4a", flip)
    assert flipped
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(bad)
    with pytest.raises(BundleError, match="SHA-256"):
        predict(bad, spectra()[0])


@pytest.mark.parametrize(
    "evil",
    ["../evil.txt", "artifacts/../../evil.joblib", "/etc/evil", "C:/evil", "a\\..\\..\\evil"],
)
def test_unsafe_member_names_are_refused(store: WorkspaceStore, tmp_path: Path, evil: str) -> None:
    out = store.export_chain(regression_chain(store), tmp_path / "ok.n4a")
    bad = rewrite(out, tmp_path / "evil.n4a", lambda n, d: (n, d), extra={evil: b"x"})
    with zipfile.ZipFile(bad) as zf:
        assert (
            evil in zf.namelist()
            or evil.lstrip("/") in zf.namelist()
            or evil.replace("\\", "/") in zf.namelist()
        )
    with pytest.raises(BundleError, match="unsafe member name"):
        load_bundle(bad)


def test_unknown_format_version_missing_member_and_not_a_zip(
    store: WorkspaceStore, tmp_path: Path
) -> None:
    out = store.export_chain(regression_chain(store), tmp_path / "ok.n4a")

    def bump(name: str, data: bytes) -> tuple[str, bytes]:
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest["format_version"] = 99
            return name, json.dumps(manifest).encode()
        return name, data

    with pytest.raises(BundleError, match="format_version 99"):
        load_bundle(rewrite(out, tmp_path / "v99.n4a", bump))
    no_artifact = rewrite(
        out, tmp_path / "gap.n4a", lambda n, d: None if n.startswith("artifacts/") else (n, d)
    )
    with pytest.raises(BundleError, match="is missing"):
        load_bundle(no_artifact)
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        load_bundle(
            rewrite(
                out,
                tmp_path / "nomanifest.n4a",
                lambda n, d: None if n == "manifest.json" else (n, d),
            )
        )
    (tmp_path / "junk.n4a").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a ZIP"):
        load_bundle(tmp_path / "junk.n4a")
    with pytest.raises(FileNotFoundError):
        load_bundle(tmp_path / "absent.n4a")


def test_other_sklearn_version_warns_with_both_versions(
    store: WorkspaceStore, tmp_path: Path
) -> None:
    chain_id = regression_chain(store)
    out = store.export_chain(chain_id, tmp_path / "ok.n4a")

    def older(name: str, data: bytes) -> tuple[str, bytes]:
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest["versions"]["scikit-learn"] = "0.24.2"
            return name, json.dumps(manifest).encode()
        return name, data

    X = spectra(5, seed=9)[0]
    with pytest.warns(UserWarning, match=r"scikit-learn 0\.24\.2") as caught:
        got = predict(rewrite(out, tmp_path / "old.n4a", older), X)
    assert any(sklearn.__version__ in str(w.message) for w in caught)
    np.testing.assert_allclose(got, store.replay_chain(chain_id, X), atol=1e-12)


def test_failed_export_leaves_no_file(store: WorkspaceStore, tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(KeyError, match="unknown chain_id"):
        store.export_chain("no-such-chain", target / "x.n4a")
    X, y = spectra()
    model = Ridge(alpha=3.3).fit(X, y)
    chain_id = save_chain(store, {}, {"fold_0": model}, model_step_idx=0)
    artifact_id = store.get_chain(chain_id)["fold_artifacts"]["fold_0"]  # type: ignore[index]
    store.get_artifact_path(artifact_id).unlink()
    with pytest.raises(FileNotFoundError, match=artifact_id):
        store.export_chain(chain_id, target / "x.n4a")
    assert not target.exists() or list(target.iterdir()) == []


def test_legacy_chain_exports_and_predicts_its_expected_values(
    legacy_store: Callable[[], tuple[WorkspaceStore, dict[str, Any]]],
    tmp_path: Path,
) -> None:
    store, expected = legacy_store()
    probe = np.asarray(expected["probe_X"], dtype=float)
    chain_id, info = next(iter(expected["chains"].items()))
    out = store.export_chain(chain_id, tmp_path / "legacy_model")
    np.testing.assert_allclose(predict(out, probe), info["replay_on_probe"], rtol=0, atol=1e-9)


def test_bundle_inflating_past_the_limit_is_refused(store: WorkspaceStore, tmp_path: Path) -> None:
    """A ZIP bomb guard: the declared uncompressed size is checked before anything is read."""
    out = store.export_chain(regression_chain(store), tmp_path / "ok.n4a")
    with pytest.raises(BundleError, match=r"would inflate to [\d,]+ bytes, over the 1,000-byte"):
        load_bundle(out, max_bytes=1000)
    assert load_bundle(out).predict(spectra()[0][:3]).shape == (3,)
