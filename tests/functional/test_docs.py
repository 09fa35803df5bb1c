"""Docs that match the code: the field reference and the editor schema are regenerated here."""

from __future__ import annotations

import json
from pathlib import Path

from sim.scenario.docgen import BEGIN, END, parameters_markdown
from sim.scenario.loading import json_schema

ROOT = Path(__file__).resolve().parents[2]


def test_parameters_reference_is_what_the_schema_generates():
    text = (ROOT / "docs" / "parameters.md").read_text()
    block = text[text.index(BEGIN) : text.index(END) + len(END)] + "\n"
    assert block == parameters_markdown(), "run: python -m sim.scenario.docgen docs/parameters.md"


def test_every_schema_field_has_a_description():
    missing = [line for line in parameters_markdown().splitlines() if line.endswith("|  |")]
    assert not missing


def test_committed_json_schema_is_current():
    committed = json.loads((ROOT / "scenarios" / "scenario.schema.json").read_text())
    assert committed == json_schema(), "run: tokensim schema --out scenarios/scenario.schema.json"
