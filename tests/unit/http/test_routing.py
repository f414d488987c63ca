import pytest
from tollway.errors import MethodNotAllowed, NotFound
from tollway.http.routing import Router


@pytest.fixture
def router() -> Router[str]:
    r: Router[str] = Router()
    r.add("/v1/users/{id}", frozenset({"GET", "HEAD"}), "user")
    r.add("/v1/users/me", frozenset({"GET"}), "me")
    r.add("/v1/users/{id}/orders/{order}", frozenset({"GET"}), "order")
    r.add("/v1/users/{id}", frozenset({"DELETE"}), "delete")
    r.add("/", frozenset({"GET"}), "root")
    return r


def test_literal_beats_parameter(router: Router[str]) -> None:
    assert router.match("GET", "/v1/users/me").target == "me"
    assert router.match("GET", "/v1/users/42").params == {"id": "42"}


def test_parameters_are_percent_decoded_once(router: Router[str]) -> None:
    match = router.match("GET", "/v1/users/a%2Fb/orders/%2541")
    assert match.target == "order"
    assert match.params == {"id": "a/b", "order": "%41"}


def test_methods_of_one_path(router: Router[str]) -> None:
    assert router.match("DELETE", "/v1/users/7").target == "delete"
    with pytest.raises(MethodNotAllowed) as info:
        router.match("POST", "/v1/users/7")
    assert info.value.headers == {"allow": "DELETE, GET, HEAD"}


def test_literal_path_with_other_method_is_405_not_a_parameter_match(router: Router[str]) -> None:
    with pytest.raises(MethodNotAllowed):
        router.match("PUT", "/v1/users/me")


@pytest.mark.parametrize("path", ["/v1/users", "/v1/users/", "/v1/users/1/orders", "/nope", "/v1//users"])
def test_no_route(router: Router[str], path: str) -> None:
    with pytest.raises(NotFound):
        router.match("GET", path)


def test_root(router: Router[str]) -> None:
    assert router.match("GET", "/").target == "root"


def test_a_greedy_parameter_takes_the_rest_of_the_path_after_literals_and_parameters() -> None:
    r: Router[str] = Router()
    r.add("/files/{rest+}", frozenset({"GET"}), "files")
    r.add("/files/{name}", frozenset({"GET"}), "one")
    r.add("/files/readme", frozenset({"GET"}), "readme")
    assert r.match("GET", "/files/readme").target == "readme"
    assert r.match("GET", "/files/a%20b").params == {"name": "a b"}
    match = r.match("GET", "/files/docs/a%20b/c.txt")
    assert (match.target, match.params) == ("files", {"rest": "docs/a b/c.txt"})
    with pytest.raises(NotFound):
        r.match("GET", "/files/")
