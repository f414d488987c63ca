import pytest
from tollway.errors import MethodNotAllowed, NotFound
from tollway.routing import Router


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


@pytest.mark.parametrize(
    "raw, canonical",
    [
        (b"/v1/items/admin", "/v1/items/admin"),
        (b"/v1/items/%61dmin", "/v1/items/admin"),
        (b"/v1/items/%7e%2D%5F%2e", "/v1/items/~-_."),
        (b"/v1/a%2fb", "/v1/a%2Fb"),  # a reserved escape stays one, upper-cased
        (b"/v1/a%25b", "/v1/a%25b"),
        (b"/v1/100%", "/v1/100%25"),  # a lone `%`
        (b"/v1/%zz", "/v1/%25zz"),
        (b"/v1/caf\xc3\xa9", "/v1/caf%C3%A9"),  # what an event's text path is, as UTF-8
        (b"/v1/a b?c#d", "/v1/a%20b%3Fc%23d"),
        (b"/v1/a;b=c:d@e!$&'()*+,", "/v1/a;b=c:d@e!$&'()*+,"),
    ],
)
def test_the_canonical_path_decodes_unreserved_escapes_once(raw: bytes, canonical: str) -> None:
    from tollway.routing import canonical_path

    assert canonical_path(raw) == canonical
    assert canonical_path(canonical.encode()) == canonical  # canonical is a fixed point


def test_a_literal_segment_matches_its_every_spelling_and_a_parameter_only_other_values() -> None:
    from tollway.routing import canonical_path

    router: Router[str] = Router()
    router.add("/items/admin", frozenset({"GET"}), "admin")
    router.add("/items/a:b", frozenset({"GET"}), "colon")
    router.add("/items/{id}", frozenset({"GET"}), "item")
    for raw in (b"/items/admin", b"/items/%61dmin", b"/items/%61%64%6D%69%6E"):
        assert router.match("GET", canonical_path(raw)).target == "admin"
    # A reserved character's escape decodes to the literal too: a backend would read it so.
    assert router.match("GET", canonical_path(b"/items/a%3Ab")).target == "colon"
    other = router.match("GET", canonical_path(b"/items/%41dmin"))
    assert (other.target, other.params) == ("item", {"id": "Admin"})
    split = router.match("GET", canonical_path(b"/items/a%2Fb"))
    assert (split.target, split.params) == ("item", {"id": "a/b"})
