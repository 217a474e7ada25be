"""The JSON spelling: the bulk path's one-step encoder writes exactly what the careful walk
(`sanitize_json`, then `json_text`) writes, for every document, odd ones included."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nirs4all_store.types import JSONText, json_document, json_text, sanitize_json

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.integers(-5, 5).map(np.int64),
    st.floats(allow_nan=True, width=64).map(np.float64),
)
keys = st.one_of(
    st.text(max_size=6),
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.floats(-2, 2),
    st.floats(-2, 2).map(np.float64),
    st.integers(-3, 3).map(np.int64),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_one_step_encoding_is_the_careful_one(document: Any) -> None:
    text = json_document(document)
    assert isinstance(text, JSONText)
    assert text == json_text(sanitize_json(document))
    json.loads(text)  # and it is strict JSON (no NaN/Infinity tokens)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"rmse": float("nan"), "r2": math.inf}, '{"rmse":null,"r2":null}'),
        ({True: 1, None: 2, 3: (1, 2)}, '{"true":1,"null":2,"3":[1,2]}'),
        ({"n": np.int64(4), "a": np.array([1.5, np.nan])}, '{"n":4,"a":[1.5,null]}'),
    ],
)
def test_nan_numpy_and_keys_are_spelled_as_json(document: Any, expected: str) -> None:
    assert json_document(document) == expected


def test_what_json_cannot_hold_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="set"):
        json_document({"a": {1, 2}})
