"""Merge, pick and rename: examples, and properties over arbitrary JSON."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tollway.upstream.compose import NotAnObject, deep_merge, merge, shape

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)

# Objects whose shapes agree: keys a-c always hold objects, keys x-z never do.
consistent = st.deferred(
    lambda: (
        st.dictionaries(st.sampled_from("abc"), consistent, max_size=3)
        | st.dictionaries(st.sampled_from("xyz"), scalars | st.lists(scalars, max_size=2), max_size=3)
    )
)
consistent_objects = st.builds(lambda a, b: {**a, **b}, consistent, consistent)


def test_objects_merge_recursively_and_later_scalars_win():
    left = {"user": {"id": 1, "tags": ["a"]}, "n": 1, "keep": True}
    right = {"user": {"name": "Ada", "tags": ["b"]}, "n": {"now": "object"}}
    assert merge([left, right]) == {
        "user": {"id": 1, "name": "Ada", "tags": ["b"]},
        "n": {"now": "object"},
        "keep": True,
    }


def test_merge_skips_failed_backends_and_refuses_non_objects():
    assert merge([None, {"a": 1}, None]) == {"a": 1}
    with pytest.raises(NotAnObject):
        merge([{"a": 1}, [1, 2]])


def test_pick_then_rename():
    value = {"id": 1, "name": "Ada", "email": "secret"}
    assert shape(value, ("id", "name", "absent"), {"name": "full_name"}) == {"id": 1, "full_name": "Ada"}
    assert shape([1], None, {}) == [1]
    with pytest.raises(NotAnObject):
        shape([1], ("id",), {})


@given(objects, objects)
def test_merge_never_crashes_and_never_mutates(left, right):
    before = (repr(left), repr(right))
    result = deep_merge(left, right)
    assert isinstance(result, dict)
    assert (repr(left), repr(right)) == before
    assert set(result) == set(left) | set(right)


@given(objects, objects)
def test_disjoint_objects_merge_to_their_union(left, right):
    right = {k: v for k, v in right.items() if k not in left}
    assert merge([left, right]) == {**left, **right}


@given(objects)
def test_empty_object_is_the_identity(value):
    assert deep_merge({}, value) == value
    assert deep_merge(value, {}) == value


@given(consistent_objects, consistent_objects, consistent_objects)
def test_merge_is_associative_when_shapes_agree(a, b, c):
    assert deep_merge(deep_merge(a, b), c) == deep_merge(a, deep_merge(b, c))


@given(objects, objects)
def test_the_later_object_wins_every_non_object_conflict(left, right):
    result = deep_merge(left, right)
    for key, value in right.items():
        if not (isinstance(value, dict) and isinstance(left.get(key), dict)):
            assert result[key] == value
