"""docs/configuration.md is generated from the configuration object and must match it."""

from __future__ import annotations

from dataclasses import fields

from evo.config import SearchConfig
from tests._config_doc_helpers import PAGE, configuration_page


def test_configuration_page_equals_the_generated_text():
    assert PAGE.read_text(encoding="utf-8") == configuration_page(), (
        "docs/configuration.md is stale: run .venv/bin/python -m tests._config_doc_helpers")


def test_every_option_and_key_is_documented_once():
    page = configuration_page()
    for f in fields(SearchConfig):
        flag = "--" + f.name.replace("_", "-")
        assert page.count(f"| `{flag}` |") == 1, flag
    for flag in ("--config", "--resume", "--no-export", "--no-bench"):
        assert f"| `{flag}` |" in page
    # Every table row has exactly the columns of its header (no stray '|' in help texts).
    for line in page.splitlines():
        if line.startswith("| `--"):
            cells = line.replace("\\|", "").count("|") - 1
            assert cells in (2, 4), line
