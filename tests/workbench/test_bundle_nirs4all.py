"""`.n4a` bundles in nirs4all 0.8's own layouts, written here without nirs4all.

The layouts are those of nirs4all 0.8.11's `BundleGenerator._export_n4a` (manifest.json with
`bundle_format_version`, pipeline.json, fold_weights.json, artifacts/step_<i>[_fold<k>]_<Class>
.joblib) and `WorkspaceStore.export_chain` (manifest.json with chain_id, chain.json, artifacts
named after their workspace files). tests/integrations/test_nirs4all_native.py checks the
predictions against nirs4all itself on bundles nirs4all wrote.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from nirs4all_store import BundleError
from nirs4all_store.workbench.axis import SpectralAxisError
from nirs4all_store.workbench.bundle import load_bundle


def dump(obj: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def write(path: Path, members: dict[str, Any]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in members.items():
            zf.writestr(name, value if isinstance(value, bytes) else json.dumps(value))
    return path


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(40, 6)), rng.normal(loc=50, scale=10, size=40)


def generator_bundle(
    tmp_path: Path, steps: list[Any], artifacts: dict[str, Any], **extra: Any
) -> Path:
    manifest = {
        "bundle_format_version": "1.0",
        "nirs4all_version": "0.8.11",
        "pipeline_uid": "uid-1",
        "model_step_index": len(steps),
        "fold_strategy": "weighted_average",
    }
    members: dict[str, Any] = {
        "manifest.json": {**manifest, **extra.pop("manifest", {})},
        "pipeline.json": {"steps": steps, "model_step_index": len(steps)},
        **{f"artifacts/{k}": dump(v) for k, v in artifacts.items()},
        **extra,
    }
    return write(tmp_path / "b.n4a", members)


def test_weighted_folds_and_y_processing_predict_as_nirs4all(tmp_path: Path) -> None:
    X, y = data()
    y_scaler = StandardScaler().fit(y.reshape(-1, 1))
    y_scaled = y_scaler.transform(y.reshape(-1, 1)).ravel()
    scaler = StandardScaler().fit(X)
    folds = [
        Ridge(alpha=a).fit(scaler.transform(X[i::2]), y_scaled[i::2]) for i, a in ((0, 1), (1, 3))
    ]
    path = generator_bundle(
        tmp_path,
        [{"step": "StandardScaler"}, {"y_processing": "StandardScaler"}, {"model": "Ridge"}],
        {
            "step_1_StandardScaler.joblib": scaler,
            "step_2_StandardScaler.joblib": y_scaler,
            "step_3_fold0_Ridge.joblib": folds[0],
            "step_3_fold1_Ridge.joblib": folds[1],
        },
        **{"fold_weights.json": {"0": 0.25, "1": 0.75}},
    )
    X32 = X[:5].astype(np.float32)  # nirs4all.predict holds spectra as float32
    Z = scaler.transform(X32)
    raw = 0.25 * folds[0].predict(Z) + 0.75 * folds[1].predict(Z)
    expected = y_scaler.inverse_transform(raw.reshape(-1, 1)).ravel()
    bundle = load_bundle(path)
    assert bundle.chain_id == "uid-1"
    np.testing.assert_allclose(bundle.predict(X[:5]), expected, rtol=0, atol=1e-12)
    with pytest.raises(SpectralAxisError, match="expects 6"):
        bundle.predict(X[:5, :4])
    with pytest.raises(ValueError, match="proba=True"):
        bundle.predict(X[:5], proba=True)


def test_refit_model_and_feature_augmentation(tmp_path: Path) -> None:
    X, y = data()
    scaler = StandardScaler().fit(X)
    wide = np.hstack([X, scaler.transform(X)])
    refit = Ridge().fit(wide, y)
    path = generator_bundle(
        tmp_path,
        [{"feature_augmentation": ["StandardScaler"]}, {"model": "Ridge"}],
        {
            "step_1_StandardScaler.joblib": scaler,
            "step_2_foldfinal_Ridge.joblib": refit,
            "step_2_fold0_Ridge.joblib": Ridge().fit(wide[:10], y[:10]),  # ignored: refit wins
        },
    )
    X32 = X[:4].astype(np.float32)
    expected = refit.predict(np.hstack([X32, scaler.transform(X32)]))
    np.testing.assert_allclose(load_bundle(path).predict(X[:4]), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("steps", "extra", "message"),
    [
        ([{"branch": [[]]}, {"model": "Ridge"}], {}, "type \\['branch'\\]"),
        (
            [{"step": "x"}, {"model": "Ridge"}],
            {"manifest": {"partitioner_routing": {"1": {}}}},
            "partitioner",
        ),
    ],
)
def test_what_is_not_supported_is_refused(
    tmp_path: Path, steps: list[Any], extra: dict[str, Any], message: str
) -> None:
    X, y = data()
    path = generator_bundle(tmp_path, steps, {"step_2_Ridge.joblib": Ridge().fit(X, y)}, **extra)
    with pytest.raises(BundleError, match=message):
        load_bundle(path)


def test_misnamed_artifact_and_missing_model_are_refused(tmp_path: Path) -> None:
    path = generator_bundle(
        tmp_path, [{"step": "x"}, {"model": "Ridge"}], {"model.joblib": Ridge()}
    )
    with pytest.raises(BundleError, match="not named step_"):
        load_bundle(path)
    path = generator_bundle(
        tmp_path, [{"step": "x"}, {"model": "Ridge"}], {"step_1_S.joblib": Ridge()}
    )
    with pytest.raises(BundleError, match="no artifact for model step 2"):
        load_bundle(path)


def chain_bundle(tmp_path: Path, files: dict[str, bytes], shared: list[str]) -> Path:
    steps = [
        {
            "step_idx": 1,
            "operator_class": "StandardScaler",
            "artifact_ids": shared,
            "stateless": False,
        },
        {"step_idx": 2, "operator_class": "Ridge", "artifact_ids": ["m:0"], "stateless": False},
    ]
    chain = {
        "steps": steps,
        "model_step_idx": 2,
        "fold_artifacts": {"fold_final": "m:0"},
        "shared_artifacts": {"1": shared},
    }
    manifest = {
        "chain_id": "c-1",
        "model_class": "Ridge",
        "model_step_index": 2,
        "fold_strategy": "single_refit",
        "has_refit": True,
        "exported_at": "now",
    }
    return write(
        tmp_path / "c.n4a",
        {
            "manifest.json": manifest,
            "chain.json": chain,
            **{f"artifacts/{k}": v for k, v in files.items()},
        },
    )


def named(kind: str, cls: str, payload: bytes) -> str:
    return f"{kind}_{cls}_{hashlib.sha256(payload).hexdigest()[:12]}.joblib"


def test_chain_layout_replays_and_checks_hash_prefixes(tmp_path: Path) -> None:
    X, y = data()
    scaler = StandardScaler().fit(X)
    model = Ridge().fit(scaler.transform(X), y)
    s, m = dump(scaler), dump(model)
    files = {named("transformer", "StandardScaler", s): s, named("model", "Ridge", m): m}
    bundle = load_bundle(chain_bundle(tmp_path, files, ["s:all"]))
    assert bundle.chain_id == "c-1"
    np.testing.assert_allclose(
        bundle.predict(X[:3]), model.predict(scaler.transform(X[:3])), rtol=0, atol=1e-12
    )
    tampered = {**files, named("model", "Ridge", m): m[:-1] + bytes([m[-1] ^ 1])}
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(chain_bundle(tmp_path, tampered, ["s:all"]))
    s2 = dump(StandardScaler().fit(X + 1))
    ambiguous = {**files, named("transformer", "StandardScaler", s2): s2}
    with pytest.raises(BundleError, match="matches 2 files"):
        load_bundle(chain_bundle(tmp_path, ambiguous, ["s:all"]))
