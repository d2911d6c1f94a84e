"""Bad input fuzzing: whatever the file holds, the outcome is a valid result or one single-line error."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from alignment.config import Settings, from_mapping, load_settings
from alignment.errors import ConfigError, InputError
from alignment.inputs import BranchInput, load_branches

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FIELDS = ["branch_name", "assigned_target", "confidence", "tags", "cluster_id"]
SETTING_KEYS = [*Settings.__struct_fields__, "max_workers", "bogus"]
VALID = json.dumps({"branches": [{"branch_name": "feature/a", "assigned_target": "main", "confidence": 0.5,
                                  "tags": ["t"], "cluster_id": 1}]}, indent=2)  # fmt: skip


def load(content: bytes) -> BranchInput | InputError:
    """Load ``content`` as an input file: the result, or the error, checked to be one line naming the file."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "in.json"
        path.write_bytes(content)
        outcome = _outcome(path)
        if isinstance(outcome, InputError):
            assert str(outcome).startswith(str(path))
            assert "\n" not in str(outcome)
        return outcome


def _outcome(path: Path) -> BranchInput | InputError:
    try:
        return load_branches(path)
    except InputError as error:
        return error


def _config_outcome(load: object) -> Settings | ConfigError:
    try:
        return load()  # type: ignore[operator, no-any-return]
    except ConfigError as error:
        return error


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(content: bytes) -> None:
    load(content)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=len(VALID) - 1))
def test_truncated_json_names_line_and_column(cut: int) -> None:
    outcome = load(VALID[:cut].encode())
    assert isinstance(outcome, InputError)
    assert "line" in str(outcome) or "expected" in str(outcome)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6), st.booleans())
def test_wrong_types_in_entries(entry: dict[str, object], wrap: bool) -> None:
    load(json.dumps({"branches": [entry]} if wrap else entry).encode())


@settings(max_examples=100, deadline=None)
@given(JSON)
def test_any_json_document(document: object) -> None:
    load(json.dumps(document).encode())


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(SETTING_KEYS), JSON, max_size=5))
def test_configuration_with_unknown_keys_and_wrong_types(block: dict[str, object]) -> None:
    outcome = _config_outcome(lambda: from_mapping({"orchestration": block}, "alignment.yaml"))
    if isinstance(outcome, ConfigError):
        assert str(outcome).startswith("alignment.yaml: ")
        assert "\n" not in str(outcome)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_yaml_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "alignment.yaml"
        path.write_text(text, encoding="utf-8")
        outcome = _config_outcome(lambda: load_settings(path))
    if isinstance(outcome, ConfigError):
        assert "\n" not in str(outcome)
