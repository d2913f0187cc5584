import pytest
from cfp.domain.routes import HTTP_METHODS, compile_route
from hypothesis import given
from hypothesis import strategies as st


def test_compiles_params_in_order():
    route = compile_route("GET", "/orgs/:orgId/users/:user_id")

    assert route.method == "GET"
    assert route.path == "/orgs/:orgId/users/:user_id"
    assert route.param_names == ["orgId", "user_id"]
    assert route.starlette_path == "/orgs/{orgId}/users/{user_id}"


def test_match_returns_params_or_none():
    route = compile_route("GET", "/users/:id/posts")

    assert route.match("/users/42/posts") == {"id": "42"}
    assert route.match("/users/42/posts/") == {"id": "42"}  # Express's non-strict trailing slash
    assert route.match("/users/42") is None
    assert route.match("/users/42/posts/7") is None
    assert route.match("/users/42/comments") is None
    assert route.match("/users//posts") is None  # a parameter is never empty


def test_static_and_root_routes():
    assert compile_route("GET", "/").match("/") == {}
    assert compile_route("GET", "/").starlette_path == "/"
    assert compile_route("POST", "/health/live").match("/health/live") == {}
    assert compile_route("POST", "/health/live").match("/health") is None


def test_routes_with_renamed_params_have_the_same_shape():
    a = compile_route("GET", "/users/:a/items/:b")
    b = compile_route("GET", "/users/:x/items/:y/")

    assert a.shape == b.shape == "GET /users/:/items/:"
    assert compile_route("DELETE", "/users/:a/items/:b").shape != a.shape
    assert compile_route("GET", "/users/me/items/:b").shape != a.shape


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "users", "must start with '/'"),
        ("GET", "/users/{id}", "not supported"),
        ("GET", "/files/*", "not supported"),
        ("GET", "/users/:id?", "not supported"),
        ("GET", "/files/:name.:ext", "not supported"),
        ("GET", "/a/:id/b/:id", "repeats parameter :id"),
        ("GET", "/a//b", "empty segment"),
        ("get", "/a", "method must be one of"),
        ("TRACE", "/a", "method must be one of"),
    ],
)
def test_bad_routes_are_refused(method, path, message):
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace("*", r"\*")):
        compile_route(method, path)


def test_every_motia_method_compiles():
    assert {compile_route(m, "/x").method for m in HTTP_METHODS} == set(HTTP_METHODS)


_SEGMENT = st.text(
    alphabet=st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1
)


@given(first=_SEGMENT, second=_SEGMENT)
def test_any_segment_values_round_trip(first, second):
    route = compile_route("GET", "/a/:first/b/:second")

    assert route.match(f"/a/{first}/b/{second}") == {"first": first, "second": second}
