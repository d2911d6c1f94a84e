"""The JSON Schemas of alignment.yaml and categorized_branches.json: committed, current, and true to the docs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from alignment.cli import main
from alignment.schemas import SCHEMA_DIR, SCHEMAS, schema, schema_text
from tests.unit.test_config import SPEC_EXAMPLE

README = Path(__file__).parents[2] / "README.md"


def _blocks(language: str, marker: str) -> list[str]:
    """The README's code blocks in ``language`` that contain ``marker``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    return [block for block in blocks if marker in block]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_committed_schema_is_the_generated_one(name: str) -> None:
    """Regenerate with `alignment schema config > alignment/schema/alignment-config.schema.json` (and input)."""
    assert (SCHEMA_DIR / SCHEMAS[name][0]).read_text(encoding="utf-8") == schema_text(name)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_command_prints_the_schema(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", name]) == 0
    assert capsys.readouterr().out == schema_text(name)


def test_the_readme_and_spec_configurations_match_the_schema() -> None:
    examples = [SPEC_EXAMPLE, *_blocks("yaml", "orchestration:")]
    assert len(examples) >= 2
    for example in examples:
        jsonschema.validate(yaml.safe_load(example), schema("config"))


def test_the_readme_input_examples_match_the_schema() -> None:
    examples = _blocks("json", '"branches"')
    assert examples
    for example in examples:
        jsonschema.validate(json.loads(example), schema("input"))


@pytest.mark.parametrize(
    ("name", "document"),
    [
        ("config", {"orchestration": {"max_workers_per_targt": 2}}),
        ("config", {"orchestration": {"targets": {"main": {"max_workers": 0}}}}),
        ("config", {"orchestration": {"log_level": "LOUD"}}),
        ("input", {"branches": []}),
        ("input", {"branches": [{"branch_name": "a", "assigned_target": "main", "confidence": 2}]}),
        ("input", {"$schema": 1, "branches": [{"branch_name": "a", "assigned_target": "main"}]}),
    ],
)
def test_an_editor_is_told_what_the_loader_refuses(name: str, document: object) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema(name))
