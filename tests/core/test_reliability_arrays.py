"""Issue 15, item 11: the binary array paths (PostgreSQL: binary COPY built by numpy on write,
`array_send` decoded by numpy on read) give back exactly what was saved, on every backend."""

from __future__ import annotations

import numpy as np
from helpers import prediction_record

from nirs4all_store import WorkspaceStore


def test_arrays_round_trip_exactly(store: WorkspaceStore) -> None:
    pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="wheat")
    n = 50_000
    rng = np.random.default_rng(7)
    y_true = rng.normal(size=n)
    y_true[[0, 5]] = [np.nan, np.inf]
    record = prediction_record(pipeline_id, None, n=n)
    record |= {
        "y_true": y_true,
        "y_pred": -y_true,
        "y_proba": rng.random((n, 3)),
        "sample_indices": np.arange(n, dtype=np.int64) * (2**40),
        "weights": np.array([0.5, 0.25, 0.25]),
    }
    small = prediction_record(pipeline_id, None, fold="fold_1", n=1)
    ids = store.save_predictions([record, small])
    got = store.get_prediction(ids[0], load_arrays=True)
    for field in ("y_true", "y_pred", "y_proba", "sample_indices", "weights"):
        np.testing.assert_array_equal(got[field], record[field], err_msg=field)
        assert got[field].shape == np.asarray(record[field]).shape, field
    assert got["sample_indices"].dtype == np.int64
    one = store.get_prediction(ids[1], load_arrays=True)
    np.testing.assert_array_equal(one["y_true"], small["y_true"])
    assert one["y_true"].shape == (1,)
