"""Branch name rules match git's own, and file names are safe and collision-free."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alignment.names import REF_COMPONENT_BYTES, branch_file_stem, fit_ref_name, invalid_branch_name

TRICKY = "ab/.-_@{}~^:?*[\\ \t\x7fé中"


def git_accepts(name: str) -> bool:
    done = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, check=False)
    return done.returncode == 0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(TRICKY), max_size=12))
@example("a.lock/b")
@example("-rf")
@example("HEAD")
@example("x/HEAD")
def test_validity_matches_git_check_ref_format(name: str) -> None:
    if name == "@" or "@{" in name:
        # git expands these shorthands instead of checking them; a name read from a file must be literal
        assert invalid_branch_name(name) is not None
        return
    assert (invalid_branch_name(name) is None) == git_accepts(name), name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "is empty"),
        ("--help", "starts with '-'"),
        ("a b", "contains one of"),
        ("a..b", "contains '..'"),
        ("@", "is reserved by git"),
        ("a@{1}", "contains '@{'"),
        ("a/", "has an empty path component"),
        ("x.lock", "ending in '.lock'"),
        ("a.", "ends with '.'"),
        (".hidden", "starting with '.'"),
        ("tab\there", "control character"),
        ("f/\ud800", "lone surrogate"),
    ],
)
def test_invalid_names_say_why(name: str, reason: str) -> None:
    problem = invalid_branch_name(name)
    assert problem is not None
    assert reason in problem


def test_valid_unusual_names() -> None:
    for name in ("feature/auth", "ünïcode", "a@b", "x/HEAD", "a" * 300):
        assert invalid_branch_name(name) is None


def test_file_stems_keep_plain_names_and_escape_the_rest() -> None:
    assert branch_file_stem("feature-auth_2.x") == "feature-auth_2.x"
    assert branch_file_stem("a/b") == "a%2Fb"
    assert branch_file_stem(".x") == "%2Ex"
    assert branch_file_stem("é") == "%C3%A9"


@given(st.lists(st.text(alphabet="ab/-%._é", min_size=1, max_size=8), min_size=2, max_size=2, unique=True))
def test_file_stems_never_collide(names: list[str]) -> None:
    first, second = names
    assert branch_file_stem(first) != branch_file_stem(second)


def test_long_names_are_cut_but_stay_unique() -> None:
    first, second = "x" * 300 + "1", "x" * 300 + "2"
    assert len(branch_file_stem(first)) <= 120
    assert branch_file_stem(first) != branch_file_stem(second)
    assert "/" not in branch_file_stem("a/" * 100)


_LONG_VALID_NAMES = st.lists(st.text(alphabet="xé中-", max_size=120), min_size=1, max_size=3).map(
    lambda parts: "/".join("x" + part for part in parts)
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_LONG_VALID_NAMES, min_size=2, max_size=2, unique=True))
def test_fitted_ref_names_fit_stay_valid_and_distinct(names: list[str]) -> None:
    fitted = [fit_ref_name(f"backup-{name}", "-pre-align-20") for name in names]
    for name in fitted:
        assert max(len(part.encode()) for part in name.split("/")) <= REF_COMPONENT_BYTES
        assert invalid_branch_name(name) is None
        assert name.endswith("-pre-align-20")
    assert fitted[0] != fitted[1]
    assert fit_ref_name(f"backup-{names[0]}", "-pre-align-20") == fitted[0]
    assert fit_ref_name("backup-short/name", "-pre-align") == "backup-short/name-pre-align"
