"""categorized_branches.json: valid input loads, every kind of bad input is one clear line."""

from __future__ import annotations

import json
import os
import re
import tracemalloc
from pathlib import Path

import msgspec
import pytest

from alignment.errors import InputError
from alignment.inputs import BranchInput, CategorizedBranches, _read_regular_file, load_branches
from alignment.validation import problems_of
from tests.conftest import entry, write_input


def test_valid_input_keeps_order_types_and_extra_fields(tmp_path: Path) -> None:
    path = write_input(tmp_path / "in.json", [entry("feature/a", extra="kept"), entry("b", "scientific")])
    loaded = load_branches(path)
    assert [spec.name for spec in loaded.branches] == ["feature/a", "b"]
    first = loaded.branches[0]
    assert (first.target, first.confidence, first.tags, first.cluster_id, first.index) == ("main", 0.9, (), 0, 0)
    assert first.extra == {"extra": "kept"}
    assert first.to_dict()["extra"] == "kept"
    assert loaded.warnings == (
        "branches[0].extra: unknown key, kept but not used "
        "(known keys: branch_name, assigned_target, confidence, tags, cluster_id)",
    )


def test_groups_follow_first_appearance_and_input_order(tmp_path: Path) -> None:
    names = [("x1", "scientific"), ("y1", "main"), ("x2", "scientific"), ("z1", "orchestration-tools"), ("y2", "main")]
    loaded = load_branches(write_input(tmp_path / "in.json", [entry(*pair) for pair in names]))
    assert [(group.target, [spec.name for spec in group.branches]) for group in loaded.groups] == [
        ("scientific", ["x1", "x2"]),
        ("main", ["y1", "y2"]),
        ("orchestration-tools", ["z1"]),
    ]


def test_any_target_name_is_a_group(tmp_path: Path) -> None:
    loaded = load_branches(write_input(tmp_path / "in.json", [entry("a", "release/2.0")]))
    assert loaded.targets == ("release/2.0",)


def test_an_empty_list_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"in\.json: branches: the list is empty; expected at least one branch"):
        load_branches(write_input(tmp_path / "in.json", []))


def test_only_name_and_target_are_required(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"branches": [{"branch_name": "a", "assigned_target": "main"}]}), encoding="utf-8")
    loaded = load_branches(path)
    spec = loaded.branches[0]
    assert (spec.name, spec.target, spec.confidence, spec.tags, spec.cluster_id) == ("a", "main", None, None, None)
    assert spec.to_dict() == {"branch_name": "a", "assigned_target": "main"}
    assert loaded.warnings == ()
    assert msgspec.json.decode(msgspec.json.encode(loaded), type=BranchInput) == loaded


def refused(tmp_path: Path, entries: list[object]) -> tuple[Path, str]:
    """Write ``entries`` as an input file; the file and the one-line error that refuses it."""
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"branches": entries}), encoding="utf-8")
    with pytest.raises(InputError) as raised:
        load_branches(path)
    return path, str(raised.value)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    entries = [
        {"branch_name": "a"},
        {"branch_name": "b", "assigned_target": "main", "confidence": 2, "tags": "x"},
        {"branch_name": "a b", "assigned_target": "main", "cluster_id": "one"},
    ]
    path, message = refused(tmp_path, entries)
    assert message == (
        f"{path}: 5 problems: branches[0].assigned_target: required field is missing; "
        "branches[1].confidence: expected a number from 0 to 1, got 2; "
        'branches[1].tags: expected a list of strings, got "x"; '
        "branches[2].branch_name: 'a b' is not a valid git branch name: it contains one of ' ~^:?*[\\'; "
        'branches[2].cluster_id: expected an integer, got "one"'
    )


def test_names_listed_twice_are_reported_with_the_other_problems(tmp_path: Path) -> None:
    entries = [
        {"branch_name": "f/1", "assigned_target": "main"},
        {"branch_name": "f/1", "assigned_target": "main"},
        {"branch_name": "a..b", "assigned_target": "main"},
        {"branch_name": "x", "assigned_target": 7},
        {"branch_name": 8, "assigned_target": "main"},
        "not an entry",
    ]
    path, message = refused(tmp_path, entries)
    assert message == (
        f"{path}: 5 problems: branches[2].branch_name: 'a..b' is not a valid git branch name: it contains '..'; "
        "branches[3].assigned_target: expected a branch name (string), got 7; "
        "branches[4].branch_name: expected a branch name (string), got 8; "
        'branches[5]: expected an object, got "not an entry"; '
        "branches[1].branch_name: 'f/1' is listed twice (first at branches[0])"
    )


def test_a_long_list_of_problems_is_cut_with_a_count(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"branches": [{"branch_name": f"b{i}"} for i in range(25)]}), encoding="utf-8")
    with pytest.raises(InputError) as raised:
        load_branches(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: 25 problems: branches[0].assigned_target: required field is missing; ")
    assert "branches[19].assigned_target" in message
    assert "branches[20]" not in message
    assert message.endswith("; and 5 more")


def test_unknown_keys_are_warned_with_the_closest_known_key(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    entries = [entry("a", confidance=0.5), entry("b", confidance=0.4, owner="x"), entry("c")]
    loaded = load_branches(write_input(path, entries))
    assert loaded.warnings == (
        "branches[0].confidance (and 1 more entry): unknown key, kept but not used (did you mean confidence?)",
        "branches[1].owner: unknown key, kept but not used "
        "(known keys: branch_name, assigned_target, confidence, tags, cluster_id)",
    )
    assert loaded.branches[0].extra == {"confidance": 0.5}


def test_unknown_top_level_keys_are_warned_but_not_schema(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    data = {"$schema": "./s.json", "branches": [entry("a")], "schema": "./s.json", "owner": "x"}
    path.write_text(json.dumps(data), encoding="utf-8")
    assert load_branches(path).warnings == (
        "schema: unknown key, not used (did you mean $schema?)",
        "owner: unknown key, not used (known keys: branches, $schema)",
    )


def test_round_trip_through_json(tmp_path: Path) -> None:
    loaded = load_branches(write_input(tmp_path / "in.json", [entry("a", note=1)]))
    again = msgspec.json.decode(msgspec.json.encode(loaded), type=BranchInput)
    assert again == loaded
    assert again.branches[0].extra == {"note": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], 'top level: expected an object with a "branches" list, got a list'),
        ({}, "branches: expected a list of branch entries, got nothing"),
        ({"branches": {}}, "branches: expected a list of branch entries, got an object"),
        ({"branches": [1]}, "branches[0]: expected an object, got 1"),
        ({"branches": [{"branch_name": "a"}]}, "branches[0].assigned_target: required field is missing"),
        ({"branches": [entry("a", confidence=1.5)]}, "branches[0].confidence: expected a number from 0 to 1, got 1.5"),
        (
            {"branches": [entry("a", confidence=True)]},
            "branches[0].confidence: expected a number from 0 to 1, got true",
        ),
        ({"branches": [entry("a", tags="x")]}, 'branches[0].tags: expected a list of strings, got "x"'),
        ({"branches": [entry("a", tags=[1])]}, "branches[0].tags[0]: expected a string, got 1"),
        ({"branches": [entry("a", cluster_id=1.0)]}, "branches[0].cluster_id: expected an integer, got 1.0"),
        ({"branches": [entry("a", cluster_id=False)]}, "branches[0].cluster_id: expected an integer, got false"),
        ({"branches": [entry(7)]}, "branches[0].branch_name: expected a branch name (string), got 7"),
        ({"branches": [entry("-rf")]}, "branches[0].branch_name: '-rf' is not a valid git branch name: it starts"),
        ({"branches": [entry("a b")]}, "branches[0].branch_name: 'a b' is not a valid git branch name"),
        ({"branches": [entry("a", "ma..in")]}, "branches[0].assigned_target: 'ma..in' is not a valid git branch"),
        (
            {"branches": [entry("f/\ud800")]},  # valid JSON (an escape), but half of a UTF-16 pair: not text
            "branches[0].branch_name: 'f/\\ud800' is not a valid git branch name: it contains a lone surrogate",
        ),
        (
            {"branches": [{**entry("a"), "\ud800x": 1}]},  # an unknown key is kept, but msgspec cannot read this one
            'branches[0]."\\ud800x": contains a lone surrogate (half of a UTF-16 pair), which is not text',
        ),
        ({"\udc00": 1, "branches": [entry("a")]}, '"\\udc00": contains a lone surrogate'),
        ({"branches": [entry("a"), entry("a")]}, "branches[1].branch_name: 'a' is listed twice (first at branches[0])"),
        ({"branches": [entry("x", "main"), entry("main", "dev")]}, "branches[1].branch_name: 'main' is also a target"),
    ],
)
def test_bad_entries_name_file_entry_field_and_expectation(tmp_path: Path, data: object, message: str) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError) as raised:
        load_branches(path)
    assert str(raised.value).startswith(f"{path}: {message}")
    assert "\n" not in str(raised.value)


def test_invalid_json_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text('{\n  "branches": [\n    {"branch_name": }\n  ]\n}', encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.json: line 3, column 21: invalid JSON: Expecting value"):
        load_branches(path)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda path: None, "file not found"),
        (lambda path: path.mkdir(), "is a directory; expected a JSON file"),
        (lambda path: path.write_bytes(b"\xff\xfe"), r"not UTF-8 text \(byte 0\)"),
    ],
)
def test_unreadable_files(tmp_path: Path, setup: object, message: str) -> None:
    path = tmp_path / "in.json"
    setup(path)  # type: ignore[operator]
    with pytest.raises(InputError, match=message):
        load_branches(path)


def test_huge_file_is_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("alignment.inputs.MAX_INPUT_BYTES", 10)
    path = write_input(tmp_path / "in.json", [entry("a")])
    with pytest.raises(InputError, match="expected at most 10"):
        load_branches(path)


def test_deeply_nested_json_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    with pytest.raises(InputError, match="invalid JSON: nested too deeply"):
        load_branches(path)


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda path: path.symlink_to("/dev/zero"), "a device or other special file"),
        (os.mkfifo, "a named pipe (FIFO)"),
    ],
    ids=["device", "fifo"],
)
def test_only_regular_files_are_read(tmp_path: Path, make: object, kind: str) -> None:
    path = tmp_path / "in.json"
    make(path)  # type: ignore[operator]
    with pytest.raises(InputError, match=re.escape(f"is {kind}; expected a regular JSON file")):
        load_branches(path)


def test_nesting_is_bounded_and_the_error_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    nested: object = "x"
    for _ in range(63):
        nested = {"k": nested}
    path.write_text(json.dumps({"branches": [entry("a", ok=nested), entry("b", deep=[nested])]}), encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.json: branches\[1\]: nested more than 64 levels deep"):
        load_branches(path)
    path.write_text(json.dumps({"branches": [entry("a", ok=nested)], "other": [[[[nested]]]]}), encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.json: other\[0\]: nested"):
        load_branches(path)


def test_reading_a_small_file_allocates_its_size_not_the_bound(tmp_path: Path) -> None:
    path = write_input(tmp_path / "in.json", [entry("a")])
    tracemalloc.start()
    try:
        load_branches(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


def test_a_branch_crossing_to_a_worker_gains_no_attribute_dict(tmp_path: Path) -> None:
    """Every process holds every branch, and msgspec's encoder gives a dataclass without slots a ``__dict__``
    per instance (about 200 bytes each, kept): the branches travel to xdist workers as JSON."""
    loaded = load_branches(write_input(tmp_path / "in.json", [entry("a")]))
    decoded = msgspec.json.decode(msgspec.json.encode(loaded), type=BranchInput)
    assert decoded.branches == loaded.branches
    assert not hasattr(decoded.branches[0], "__dict__")


def test_a_file_longer_than_its_stat_size_is_read_whole() -> None:
    status = Path("/proc/self/status")  # a regular file whose size says 0
    assert status.stat().st_size == 0
    assert b"\nPid:" in _read_regular_file(status)


def test_a_schema_key_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"$schema": "x.json", "branches": [entry("a")]}), encoding="utf-8")
    assert load_branches(path).warnings == ()
    path.write_text(json.dumps({"$schema": 1, "branches": [entry("a")]}), encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.json: \$schema: expected a string, got 1"):
        load_branches(path)


def test_the_model_alone_refuses_an_empty_list() -> None:
    """``parse_branches`` says it first in its own words; the model, which the schema comes from, agrees."""
    problems = problems_of({"branches": []}, CategorizedBranches, "", {})
    assert problems == ["branches: expected a non-empty list of objects, got []"]
