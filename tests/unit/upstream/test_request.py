from __future__ import annotations

import pytest
from tollway.config.templates import ParamValueError, Template, TemplateValueError
from tollway.upstream.request import encode_query, encode_segment


def test_values_are_url_encoded():
    assert encode_segment("a/b c?#%") == "a%2Fb%20c%3F%23%25"
    assert encode_query("x=1&y=2") == "x%3D1%26y%3D2"


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
