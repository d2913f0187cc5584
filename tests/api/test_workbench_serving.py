"""Serving the workbench: a browser asking for `/` gets the built web/dist/index.html with its
Content-Security-Policy, an API client the JSON index of the surfaces; `/assets/*` serves the
build's hashed scripts and styles. The build is a fake one in a temporary CFP_WEB_DIR."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfp.settings import Settings

from tests.api.conftest import R, ok_json

pytestmark = pytest.mark.api

PAGE = '<!doctype html><html><head><script type="module" src="/assets/app-1a2b.js"></script>\
</head><body><div id="root"></div></body></html>'
SCRIPT = "console.log('workbench')"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    """A fake build: index.html and one asset; a secret beside it that must never be served."""
    root = tmp_path / "web-dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(PAGE)
    (root / "assets" / "app-1a2b.js").write_text(SCRIPT)
    (root / "assets" / "app-1a2b.css").write_text("body{margin:0}")
    (tmp_path / "secret.txt").write_text("not for the web")
    return root


def anonymous(client):
    """The client without the dev API key: a browser has no credential before it signs in."""
    client.headers.pop("authorization", None)
    client.headers.pop("x-tenant-id", None)
    return client


def test_a_browser_gets_the_workbench_with_its_csp(serve, web_dir):
    client = anonymous(serve(web_dir=web_dir))
    page = client.get("/", headers={"accept": BROWSER})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == PAGE
    csp = {
        part.strip().split(" ")[0]: part.strip()
        for part in page.headers["content-security-policy"].split(";")
    }
    assert csp["default-src"] == "default-src 'self'"
    assert csp["script-src"] == "script-src 'self'"  # no inline script, no eval
    # the API and its websocket: the same origin only ('self' covers ws:// and wss:// there)
    assert csp["connect-src"] == "connect-src 'self'"
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    assert csp["base-uri"] == "base-uri 'none'"
    assert page.headers["cache-control"] == "no-cache"  # a new build is picked up at once
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    "accept",
    [None, "*/*", "application/json", "application/json, text/html", "text/plain"],
)
def test_an_api_client_gets_the_surfaces(serve, web_dir, accept):
    client = anonymous(serve(web_dir=web_dir))
    headers = {} if accept is None else {"accept": accept}
    index = ok_json(client.get("/", headers=headers))
    assert index["project"] == "proj" and index["surfaces"]["traces"] == f"{R}/traces"
    assert "content-security-policy" not in client.get("/", headers=headers).headers


def test_html_asked_before_json_is_a_browser(serve, web_dir):
    client = anonymous(serve(web_dir=web_dir))
    assert client.get("/", headers={"accept": "text/html, application/json"}).text == PAGE


def test_assets_are_served_and_nothing_beside_them(serve, web_dir):
    client = anonymous(serve(web_dir=web_dir))
    script = client.get("/assets/app-1a2b.js")
    assert script.status_code == 200 and script.text == SCRIPT
    assert "javascript" in script.headers["content-type"]
    style = client.get("/assets/app-1a2b.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert client.get("/assets/missing-0000.js").status_code == 404
    for escape in ("/assets/%2e%2e/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
        answer = client.get(escape)
        assert answer.status_code == 404 and "not for the web" not in answer.text


def test_without_a_build_a_browser_gets_the_surfaces(serve, tmp_path):
    empty = tmp_path / "no-build"
    empty.mkdir()
    client = anonymous(serve(web_dir=empty))
    index = ok_json(client.get("/", headers={"accept": BROWSER}))
    assert index["surfaces"]["websocket"] == f"{R}/ws"
    assert client.get("/assets/app-1a2b.js").status_code == 404


def test_the_build_comes_from_cfp_web_dir_or_the_repository(tmp_path):
    assert Settings.load({"CFP_WEB_DIR": str(tmp_path)}).web_build == tmp_path
    repository = Path(__file__).resolve().parents[2]
    assert Settings.load({}).web_build == repository / "web" / "dist"
