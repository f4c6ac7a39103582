"""/docs renders every operation from the package's own Swagger UI, with nothing fetched from elsewhere
(an offline machine sees the same page), under the dashboard's Content-Security-Policy."""

import pytest

pytestmark = pytest.mark.slow


def test_docs_render_the_operations_offline(pages, stack):
    page = pages.open(None, key=None)
    outside = []

    def only_local(route):
        if route.request.url.startswith(stack.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    response = page.goto("/docs")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    page.locator(".opblock").first.wait_for()
    doc = stack.api.call("GET", "/openapi.json").json()
    operations = sum(len(methods) for methods in doc["paths"].values())
    assert page.locator(".opblock").count() == operations
    assert page.get_by_text("/v1/jobs/{job_id}/events").count() >= 1
    assert not outside, outside
