"""docs/operations.md lists every setting and RELIABILITY.md every limit, with defaults and meanings generated
from the Settings class: a setting added without a description, or a page not regenerated after a change,
fails here (`python -m app.settings_doc` regenerates both)."""

import pytest

from app import settings_doc
from app.settings import Settings
from tests.conftest import root_path


def test_every_setting_says_what_it_does():
    assert settings_doc.undocumented() == []


@pytest.mark.parametrize("page", sorted(settings_doc.PAGES))
def test_each_page_shows_the_settings_as_the_code_has_them(page):
    text = (root_path() / page).read_text()
    assert text == settings_doc.render(text), "run: python -m app.settings_doc"


def test_operations_lists_every_setting_and_reliability_every_limit():
    ops = (root_path() / "docs/operations.md").read_text()
    assert all(f"`DLSERVE_{n.upper()}` |" in ops for n in Settings.model_fields)
    assert "`DLSERVE_HOME` | `var` |" in ops and "`DLSERVE_MAX_UPLOAD_BYTES` | `2 GiB` |" in ops
    rel = (root_path() / "RELIABILITY.md").read_text()
    for limit in ("MAX_UPLOAD_BYTES", "DATASET_MAX_RATIO", "HEADER_TIMEOUT_S", "BODY_TIMEOUT_S", "MAX_CONNECTIONS",
                  "MAX_INPUTS_PER_REQUEST", "REQUEST_TIMEOUT_MS", "HEARTBEAT_TIMEOUT_S"):
        assert f"`DLSERVE_{limit}` |" in rel, limit
    assert "`DLSERVE_PROVIDERS` |" not in rel
