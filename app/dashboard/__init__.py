"""The web dashboard and the API docs, served by the API process from files inside this package.

The dashboard is one more client of the JSON API: every page is the same small HTML shell
(static/shell.html) whose ES modules (static/js/) read the page from the URL and call /v1 with the session
cookie. No build step and no CDN: the chart library and Swagger UI are vendored under static/vendor/.
"""

from app.dashboard.routes import install

__all__ = ["install"]
