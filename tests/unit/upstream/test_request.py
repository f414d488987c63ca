from __future__ import annotations

import pytest
from tollway.table.templates import ParamValueError, Template, TemplateValueError
from tollway.upstream.request import encode_greedy, encode_query, encode_segment


def test_values_are_url_encoded():
    assert encode_segment("a b c?#%") == "a%20b%20c%3F%23%25"
    assert encode_query("x=1&y=2") == "x%3D1%26y%3D2"
    assert encode_greedy("docs/a b/c.txt") == "docs/a%20b/c.txt"


@pytest.mark.parametrize(
    "value",
    [
        "a/b",  # a caller's %2F, decoded
        "../secret",
        "..",
        ".",
        "..\\secret",
        "a\\b",
        "%2e%2e",  # the caller sent %252e%252e: a backend that decodes again climbs
        "%2e%2e%2fsecret",
        "%252e%252e%252f",
        "..;jsessionid=1",
        "\uff0e\uff0e",  # NFKC folds the full-width dots into ..
        "a\uff0fb",
    ],
)
def test_a_path_value_that_could_leave_its_segment_is_refused(value):
    with pytest.raises(TemplateValueError):
        encode_segment(value)


@pytest.mark.parametrize("value", ["a/../b", "../x", "a/./b", "a/%2e%2e/b", "a\\b/c"])
def test_a_greedy_value_may_span_segments_but_never_climb(value):
    with pytest.raises(TemplateValueError):
        encode_greedy(value)


def test_a_bad_parameter_is_the_callers_fault_and_a_bad_backend_value_is_not():
    template = Template.parse("/users/{id}/{user.id}")
    with pytest.raises(ParamValueError):
        template.render({"id": ".."}, {"user": {"id": "1"}}, encode_segment)
    with pytest.raises(TemplateValueError) as caught:
        template.render({"id": "1"}, {"user": {"id": ".."}}, encode_segment)
    assert not isinstance(caught.value, ParamValueError)
    with pytest.raises(TemplateValueError, match="not a scalar"):
        template.render({"id": "1"}, {"user": {"id": [1]}}, encode_segment)
    assert template.render({"id": "a b"}, {"user": {"id": True}}, encode_segment) == "/users/a%20b/true"
