"""The dashboard's server side (the pages themselves are tested in a browser, tests/dashboard/): its pages
and /docs come from the package with a strict Content-Security-Policy, no page script or style is inline,
no script builds HTML from strings, the JSON API's answers are unchanged, and every file a page needs is
package data, so a non-editable install serves them too."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from app.dashboard.headers import CSP
from app.dashboard.routes import PAGES, STATIC
from tests.conftest import root_path

OWN_SCRIPTS = [p for p in (STATIC / "js").rglob("*.js")]


def test_pages_and_docs_send_a_strict_content_security_policy(client):
    client.cookies.set("dlserve_session", "any")  # a page is served to a browser that has a session cookie
    for path in ("/", "/runs/abc", "/compare?ids=a,b", "/models/m", "/try", "/signin", "/docs"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        for directive in ("script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'",
                          "connect-src 'self'", "img-src 'self' data: blob:", "form-action 'self'"):
            assert directive in csp, (path, directive)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_a_page_without_a_session_goes_to_sign_in_and_comes_back(client):
    r = client.get("/runs/abc?x=epoch&log=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/signin?next=%2Fruns%2Fabc%3Fx%3Depoch%26log%3D1"
    assert client.get("/signin", follow_redirects=False).status_code == 200


def test_static_files_and_the_vendored_libraries_are_served(client):
    for path, kind in (("/static/js/app.js", "javascript"), ("/static/css/app.css", "text/css"),
                       ("/static/vendor/uplot/uPlot.esm.js", "javascript"),
                       ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "javascript")):
        r = client.get(path)
        assert r.status_code == 200 and kind in r.headers["content-type"], path
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-cache"
    r = client.get("/static/../settings.py")
    assert r.status_code == 404
    assert all((STATIC / "vendor" / lib / "LICENSE").is_file() for lib in ("uplot", "swagger-ui"))


def test_the_json_api_answers_are_unchanged(client):
    r = client.get("/v1/models")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert "content-security-policy" not in r.headers and "x-frame-options" not in r.headers


def test_dashboard_routes_are_not_in_the_api_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p in PAGES or p.startswith(("/static", "/docs"))]
    assert CSP in client.get("/docs").headers["content-security-policy"]


def test_no_inline_script_or_style_and_no_html_built_from_strings():
    for html in STATIC.glob("*.html"):
        text = html.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"{html.name}: an inline script"
        assert "<style" not in text and " style=" not in text and not re.search(r"\son\w+=", text), html.name
    for script in OWN_SCRIPTS:
        text = re.sub(r"(^|\s)//.*$", "", script.read_text(), flags=re.M)  # comments may name what is avoided
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                     "localStorage", "sessionStorage", "setAttribute(\"style\""):
            assert sink not in text, f"{script.relative_to(STATIC)} uses {sink}"


def test_every_file_the_pages_need_is_package_data():
    config = tomllib.loads((root_path() / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["app.dashboard"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    missing = [f for f in files if not any(fnmatch(f, pat) and f.count("/") == pat.count("/") for pat in patterns)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_every_file_is_under_400_lines():
    for path in [*OWN_SCRIPTS, *STATIC.glob("css/*.css"), *Path(STATIC.parent).glob("*.py")]:
        assert len(path.read_text().splitlines()) < 400, path
