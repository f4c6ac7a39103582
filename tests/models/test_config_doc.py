"""docs/config/<task>.md is generated from each family's Config: every key documented, and the pages current."""

from __future__ import annotations

import dataclasses

import pytest

from models import FAMILIES, family
from models.common import config_doc


@pytest.mark.parametrize("task", list(FAMILIES))
def test_every_config_key_has_a_doc(task):
    cls = family(task).config
    undocumented = [f.name for f in dataclasses.fields(cls) if not str(f.metadata.get("doc", "")).strip()]
    assert undocumented == [], f"{task} config keys without a doc: {undocumented}"


@pytest.mark.parametrize("task", list(FAMILIES))
def test_config_page_matches_the_code(task):
    path = config_doc.DOCS / f"{task}.md"
    assert path.is_file(), f"{path} is missing: run python -m models.common.config_doc"
    assert path.read_text(encoding="utf-8") == config_doc.page(task), (
        f"{path} is out of date with models/{task}/config.py: run python -m models.common.config_doc")


def test_a_table_row_per_key_with_readable_types():
    text, platform = config_doc.page("fraud").split("\n## Keys every family takes\n")
    assert "| `devices` | int | `1` |" in platform and "`devices` above 1 is a 422" in platform
    cls = family("fraud").config
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == [f.name for f in dataclasses.fields(cls)]
    assert "| `loss` | `weighted_bce` \\| `focal` | `\"weighted_bce\"` |" in text
    assert "| `pos_weight` | float or none | none |" in text
    assert "| `drop_columns` | list of str | `[\"Time\"]` |" in text
