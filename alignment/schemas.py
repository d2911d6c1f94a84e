"""JSON Schemas of the two files users write, generated from their models, so editors can validate them.

``alignment.yaml`` (``config``) and ``categorized_branches.json`` (``input``): the committed copies in
``schema/`` are what a ``# yaml-language-server: $schema=...`` line or a ``"$schema"`` key points at, and a
test keeps them equal to what the models generate (``alignment schema config|input`` prints them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from alignment.config import ConfigFile
from alignment.inputs import CategorizedBranches

SCHEMA_DIR = Path(__file__).with_name("schema")
SCHEMAS: dict[str, tuple[str, type[msgspec.Struct], str]] = {
    "config": ("alignment-config.schema.json", ConfigFile, "alignment.yaml"),
    "input": ("categorized-branches.schema.json", CategorizedBranches, "categorized_branches.json"),
}


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of file ``name`` (a key of ``SCHEMAS``)."""
    _, model, title = SCHEMAS[name]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        **msgspec.json.schema(model),
    }


def schema_text(name: str) -> str:
    """``schema(name)`` as the committed file holds it."""
    return json.dumps(schema(name), indent=2) + "\n"
