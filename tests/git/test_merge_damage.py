"""What a clean merge breaks: each class caught on a real repository, and the same change on one side alone not."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from alignment.checks.interface import ModuleIndex, removed_names
from alignment.detect import check_file
from alignment.errors import ConfigError
from alignment.git import Git, RepoLocation
from alignment.model import Severity, Status
from tests.conftest import Aligner, Repo, settings

BASE = "def main():\n    return 1\n"


def diverge(
    repo: Repo, base: Mapping[str, str], branch: Mapping[str, str | None], target: Mapping[str, str | None]
) -> None:
    """``base`` on main, then ``branch`` on feature and ``target`` on main, each from that base."""
    fork = repo.commit("main", dict(base), "base")
    repo.commit("feature", dict(branch), "branch work", parent=fork)
    repo.commit("main", dict(target), "target work")


CALL = "result = dict(\n    a=1,\n    b=2,\n\n\n    c=3,\n)\n"
SIGNATURE = "def f(\n    a,\n    b,\n\n\n    c,\n):\n    return a\n"
MODULE = "def first():\n    return 1\n\n\n\n\ndef last():\n    return 2\n"


@pytest.mark.parametrize(
    ("base", "ours", "theirs", "code"),
    [
        (CALL, CALL.replace("b=2,", "b=2,\n    x=4,"), CALL.replace("c=3,", "c=3,\n    x=5,"), "python_compile_error"),
        (
            SIGNATURE,
            SIGNATURE.replace("b,", "b,\n    x,"),
            SIGNATURE.replace("c,", "c,\n    x=0,"),
            "python_compile_error",
        ),
        (
            MODULE,
            MODULE.replace("def first", "def extra():\n    return 3\n\n\ndef first"),
            MODULE + "\n\ndef extra():\n    return 4\n",
            "duplicate_definition",
        ),
        (
            "import os\n\nTABLE = {\n    'a': 1,\n\n\n    'b': 2,\n}\n",
            "import os\n\nTABLE = {\n    'a': 1,\n    'k': 1,\n\n\n    'b': 2,\n}\n",
            "import os\n\nTABLE = {\n    'a': 1,\n\n\n    'b': 2,\n    'k': 2,\n}\n",
            "duplicate_dict_key",
        ),
        (
            "import os\n\n\n\ndef f():\n    return 1\n",
            "\n\n\n\ndef f():\n    return 1\n",
            "import os\n\n\n\ndef f():\n    return os.sep\n",
            "undefined_name",
        ),
    ],
    ids=["keyword-repeated", "duplicate-argument", "defined-twice", "dict-key-twice", "import-removed"],
)
def test_python_damage_of_a_clean_merge_fails_detection(
    repo: Repo, align: Aligner, base: str, ours: str, theirs: str, code: str
) -> None:
    diverge(repo, {"mod.py": base}, {"mod.py": ours}, {"mod.py": theirs})
    old = repo.tip("feature")
    result = align("feature")["feature"]
    assert (result.status, result.codes) == (Status.FAILED_ERROR_DETECTION, (code,))
    assert result.findings[0].file == "mod.py"
    assert repo.tip("feature") == old


def test_the_same_change_on_one_side_alone_is_not_reported(repo: Repo, align: Aligner) -> None:
    diverge(
        repo,
        {"mod.py": MODULE},
        {"mod.py": MODULE.replace("def first", "def extra():\n    return 3\n\n\ndef first")},
        {"other.py": "x = 1\n"},
    )
    assert align("feature")["feature"].status is Status.COMPLETED


def test_damage_a_side_had_already_is_a_warning_and_a_new_name_is_still_caught(repo: Repo, align: Aligner) -> None:
    base = "def f():\n    return missing_one\n\n\n\ndef g():\n    return 1\n\n\n\ndef h():\n    return 1\n"
    diverge(
        repo,
        {"mod.py": base},
        {"mod.py": base.replace("return 1\n\n", "return 2\n\n")},
        {"mod.py": base.replace("h():\n    return 1", "h():\n    return 3")},
    )
    (finding,) = align("feature")["feature"].findings
    assert (finding.code, finding.severity, finding.introduced) == ("undefined_name", Severity.WARNING, False)
    with_os = "import os\n\n\n\n" + base
    diverge(
        repo,
        {"two.py": with_os},
        {"two.py": base},
        {"two.py": with_os.replace("h():\n    return 1", "h():\n    return os.sep")},
    )
    result = align("feature")["feature"]
    assert (result.status, result.codes) == (Status.FAILED_ERROR_DETECTION, ("undefined_name",))
    assert {(f.message, f.introduced) for f in result.findings} == {
        ("undefined name `os`", True),
        ("undefined name `missing_one` (before the merge too)", False),
    }


@pytest.mark.parametrize(
    ("path", "base", "ours", "theirs"),
    [
        (
            "a.go",
            "package a\n\nfunc A() {}\n\n\n\nfunc B() {}\n",
            "package a\n\nfunc A() {}\n\nfunc x() {}\n\n\n\nfunc B() {}\n",
            "package a\n\nfunc A() {}\n\n\n\nfunc B() {}\n\nfunc x() {}\n",
        ),
        (
            "a.c",
            "int a(void) { return 1; }\n\n\n\nint b(void) { return 2; }\n",
            "int a(void) { return 1; }\nint x(void) { return 3; }\n\n\n\nint b(void) { return 2; }\n",
            "int a(void) { return 1; }\n\n\n\nint b(void) { return 2; }\nint x(void) { return 4; }\n",
        ),
        (
            "a.ts",
            "function a() {}\n\n\n\nfunction b() {}\n",
            "function a() {}\nfunction x() {}\n\n\n\nfunction b() {}\n",
            "function a() {}\n\n\n\nfunction b() {}\nexport function x() {}\n",
        ),
        (
            "a.sh",
            "a() { :; }\n\n\n\nb() { :; }\n",
            "a() { :; }\nx() { :; }\n\n\n\nb() { :; }\n",
            "a() { :; }\n\n\n\nb() { :; }\nx() { echo; }\n",
        ),
    ],
    ids=["go", "c", "typescript", "shell"],
)
def test_a_definition_both_sides_add_is_caught_in_other_languages(
    repo: Repo, align: Aligner, path: str, base: str, ours: str, theirs: str
) -> None:
    diverge(repo, {path: base}, {path: ours}, {path: theirs})
    result = align("feature")["feature"]
    assert (result.status, result.codes) == (Status.FAILED_ERROR_DETECTION, ("duplicate_definition",))
    assert "`x` is defined twice" in result.findings[0].message


def test_a_syntax_error_the_merge_makes_in_rust_is_caught_and_one_a_side_had_is_a_warning(
    repo: Repo, align: Aligner
) -> None:
    base = "fn a() -> u8 {\n    1\n}\n\n\n\nfn b() {}\n"
    ours = base.replace("    1\n}", "    let v = vec![\n        1,\n    ];\n    v[0]\n}")
    theirs = base.replace("    1\n}", "    1\n}\n}")  # an extra brace: the target is broken already
    diverge(repo, {"lib.rs": base}, {"lib.rs": ours}, {"lib.rs": theirs})
    (finding,) = align("feature")["feature"].findings
    assert (finding.code, finding.introduced) == ("syntax_error", False)
    listing = "const START: u8 = 0;\n// a\n// b\n// c\n// d\n// e\nconst END: u8 = 0;\n"
    as_list = listing.replace("const START: u8 = 0;", "const L: [u8; 0] = [").replace("const END: u8 = 0;", "];")
    diverge(
        repo, {"list.rs": listing}, {"list.rs": as_list}, {"list.rs": listing.replace("// c\n", "// c\nfn f() {}\n")}
    )
    (finding,) = align("feature")["feature"].findings
    assert (finding.code, finding.file, finding.line, finding.introduced) == ("syntax_error", "list.rs", 5, True)
    assert finding.message.startswith("invalid Rust: ")


def test_switches_turn_each_check_off(repo: Repo, align: Aligner) -> None:
    go = "package a\n\nfunc A() {}\n\n\n\nfunc B() {}\n"
    diverge(
        repo,
        {"mod.py": CALL, "a.go": go},
        {
            "mod.py": CALL.replace("b=2,", "b=2,\n    x=4,"),
            "a.go": go.replace("func A() {}", "func A() {}\nfunc X() {}"),
        },
        {"mod.py": CALL.replace("c=3,", "c=3,\n    x=5,"), "a.go": go + "func X() {}\n"},
    )
    assert align("feature")["feature"].codes == ("duplicate_definition", "python_compile_error")
    quiet = settings(detect_python_compile=False, detect_other_languages=False)
    assert align("feature", config=quiet)["feature"].status is Status.COMPLETED


def test_file_level_switches() -> None:
    source = b"import os\n\ndef f():\n    return undefined\n\n\ndef f():\n    pass\n"
    assert {finding.code for finding in check_file("a.py", source)} == {"undefined_name", "duplicate_definition"}
    assert check_file("a.py", source, settings(detect_python_flakes=False)) == []
    assert check_file("a.py", b"return 1\n", settings(detect_python_compile=False)) == []
    assert check_file("a.js", b"function f( {\n")[0].code == "syntax_error"
    assert check_file("a.js", b"function f( {\n", settings(detect_other_languages=False)) == []


@pytest.mark.parametrize(
    ("path", "broken"),
    [("a.py", "def f(:\n"), ("a.json", "{,"), ("a.yaml", "a: [\n"), ("a.toml", "a = ]\n"), ("a.js", "function f( {\n")],
)
def test_a_file_above_the_parse_limit_is_not_parsed_and_a_note_says_so(path: str, broken: str) -> None:
    """A 3 MB generated module took about 1 GB and 20-30 s to parse and check: far past ``max_memory_mb``."""
    content = (broken + "\n" * 1100).encode()
    assert [finding.severity for finding in check_file(path, content)] == [Severity.ERROR]
    (note,) = check_file(path, content, settings(detect_max_parsed_kb=1))
    assert (note.code, note.severity, note.file) == ("file_too_large_to_parse", Severity.INFO, path)
    assert (
        note.message
        == f"not parsed, so not checked for errors: {len(content):,} bytes, above detect_max_parsed_kb (1 KB)"
    )


def test_a_file_above_the_parse_limit_still_has_its_lines_checked() -> None:
    markers = b"x = 1\n<<<<<<< ours\na = 1\n=======\na = 2\n>>>>>>> theirs\n" + b"y = 2\n" * 300
    codes = [finding.code for finding in check_file("a.py", markers, settings(detect_max_parsed_kb=1))]
    assert codes == ["file_too_large_to_parse", "conflict_markers"]


def test_a_merge_of_a_module_above_the_parse_limit_is_noted_not_failed(repo: Repo, align: Aligner) -> None:
    """Both sides add ``def extra()`` to a module too large to parse: the merge is not failed on what was not
    checked, and the note is the merge's own (not ``before the merge too``)."""
    module = MODULE + "\n\nVALUES = [\n" + "    1,\n" * 200 + "]\n"
    diverge(
        repo,
        {"mod.py": module},
        {"mod.py": module.replace("def first", "def extra():\n    return 3\n\n\ndef first")},
        {"mod.py": module + "\n\ndef extra():\n    return 4\n"},
    )
    assert align("feature")["feature"].codes == ("duplicate_definition",)
    result = align("feature", config=settings(detect_max_parsed_kb=1))["feature"]
    assert result.status is Status.COMPLETED
    (note,) = result.findings
    assert (note.code, note.severity, note.introduced) == ("file_too_large_to_parse", Severity.INFO, True)
    assert note.message.endswith("bytes, above detect_max_parsed_kb (1 KB)")


@pytest.mark.parametrize(
    ("path", "source"),
    [
        (
            "a.py",
            "import os\n\n@property\ndef f(): pass\n\nif os.sep:\n    def g(): pass\nelse:\n    def g(): pass\n"
            "x = {'a': 1, 'a': 1}\nimport os\nprint(os, __file__)\nx = 'a' is 1\n",
        ),
        ("a.c", "#ifdef A\nint f(void) { return 1; }\n#else\nint f(void) { return 2; }\n#endif\n"),
        ("a.rs", "#[cfg(unix)]\nfn f() {}\n#[cfg(windows)]\nfn f() {}\nstruct S;\nfn s() {}\n"),
        (
            "b.rs",
            "#[cfg(unix)]\n/// Reads /proc.\nfn f() {}\n#[cfg(windows)]\n// plain\n/* block */\n#[inline]\nfn f() {}\n"
            "#[cfg(unix)]\n#[inline]\n/** doc */\nfn g() {}\n#[cfg(windows)]\n#[inline]\nfn g() {}\n"
            "#[my_macro]\n// may rename it\nfn h() {}\nfn h() {}\n"
            "#[cfg_attr(test, my_macro)]\nfn i() {}\nfn i() {}\n"
            "#[cfg_attr(unix, inline, cfg(x))]\nfn j() {}\nfn j() {}\n"
            "#[cfg_attr(test, derive(Debug), my::mac)]\nstruct K;\nstruct K;\nstruct R { x: u8 }\nfn R() {}\n",
        ),
        ("a.go", "package a\nfunc init() {}\nfunc init() {}\nfunc (a A) M() {}\nfunc (b B) M() {}\n"),
        ("a.ts", "function f(a: string): void;\nfunction f(a: any) {}\ninterface I {}\ninterface I {}\n"),
        ("a.cpp", "int f(int a) { return a; }\nint f(double a) { return 0; }\n"),
    ],
)
def test_legal_repetitions_are_not_findings(path: str, source: str) -> None:
    assert check_file(path, source.encode()) == []


def test_rust_items_under_attributes_that_keep_them_are_still_duplicates() -> None:
    first = "#[derive(Debug)]\n/// One.\nstruct S;\n#[inline]\nfn f() {}\n"
    source = first + "#[derive(Debug)]\n#[repr(C)]\nstruct S;\nfn f() {}\n"
    findings = check_file("a.rs", source.encode())
    assert [(finding.code, finding.line) for finding in findings] == [
        ("duplicate_definition", 8),
        ("duplicate_definition", 9),
    ]


def test_rust_items_under_cfg_attr_are_still_duplicates() -> None:
    """``cfg_attr`` adds its attributes when the predicate holds and none otherwise: the item stays either way
    (rustc's E0428), unlike under ``cfg``."""
    source = '#[cfg_attr(feature = "serde", derive(Serialize),)]\npub fn build() {}\n'
    findings = check_file("a.rs", (source + source.replace("derive(Serialize),", "inline")).encode())
    assert [(finding.line, finding.message) for finding in findings] == [
        (4, "`build` is defined twice at the top level of this Rust file")
    ]


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("struct A;\nfn A() {}\n", "A"),
        ("fn A() {}\nstruct A(u8);\n", "A"),
        ("struct A<T>(T);\nconst A: u8 = 1;\n", "A"),
        ("struct A;\nstruct A(u8);\n", "type A"),
    ],
)
def test_a_unit_or_tuple_struct_and_a_function_of_its_name_are_duplicates(source: str, name: str) -> None:
    """Such a struct's constructor is a value: a function or constant of its name is defined twice (E0428)."""
    (finding,) = check_file("a.rs", source.encode())
    assert (finding.line, finding.message) == (2, f"`{name}` is defined twice at the top level of this Rust file")


UTIL = "def helper():\n    return 1\n\n\ndef other():\n    return 2\n"
RENAMED = UTIL.replace("def helper", "def assist")


def test_an_import_of_a_name_the_target_renamed_fails_with_the_commit_that_did_it(repo: Repo, align: Aligner) -> None:
    fork = repo.commit("main", {"pkg/__init__.py": "", "pkg/util.py": UTIL}, "base")
    repo.commit("feature", {"app.py": "import json\n\nfrom pkg.util import helper\n\nprint(helper())\n"}, parent=fork)
    repo.commit("main", {"notes.txt": "x\n"}, "unrelated")
    renaming = repo.commit("main", {"pkg/util.py": RENAMED}, "Rename helper to assist")
    repo.commit("main", {"more.txt": "y\n"}, "later")
    result = align("feature")["feature"]
    assert (result.status, result.codes) == (Status.FAILED_ERROR_DETECTION, ("name_removed_by_other_side",))
    (finding,) = result.findings
    assert (finding.file, finding.line) == ("app.py", 3)
    assert finding.message == (
        f"imports `helper` from `pkg.util`, which the target removed in {renaming[:12]} "
        "('Rename helper to assist', Test Author)"
    )


def test_a_module_above_the_parse_limit_is_not_judged_by_the_names_check(repo: Repo, align: Aligner) -> None:
    padded = UTIL + "\n\nVALUES = [\n" + "    1,\n" * 200 + "]\n"
    fork = repo.commit("main", {"pkg/__init__.py": "", "pkg/util.py": padded}, "base")
    repo.commit("feature", {"app.py": "from pkg.util import helper\n\nprint(helper())\n"}, parent=fork)
    repo.commit("main", {"pkg/util.py": padded.replace("def helper", "def assist")}, "Rename helper to assist")
    assert align("feature")["feature"].codes == ("name_removed_by_other_side",)
    result = align("feature", config=settings(detect_max_parsed_kb=1))["feature"]
    assert (result.status, result.findings) == (Status.COMPLETED, ())


def test_a_target_file_using_a_name_the_branch_removed_is_caught(repo: Repo, align: Aligner) -> None:
    user = "from . import util\n\n\ndef run():\n    return util.helper()\n"
    fork = repo.commit("main", {"pkg/__init__.py": "", "pkg/util.py": UTIL}, "base")
    removing = repo.commit("feature", {"pkg/util.py": RENAMED}, "Rename helper", parent=fork)
    repo.commit("main", {"pkg/run.py": user}, "target uses helper")
    (finding,) = align("feature")["feature"].findings
    assert (finding.code, finding.file, finding.line) == ("name_removed_by_other_side", "pkg/run.py", 5)
    assert finding.message.startswith(f"uses `.util.helper`, which this branch removed in {removing[:12]}")


def test_modules_neither_side_changed_are_not_read(repo: Repo) -> None:
    """A reference to a module that is the same on both sides and after the merge resolves the same everywhere:
    the names check does not read that module at all."""
    fork = repo.commit("main", {"pkg/__init__.py": "", "pkg/util.py": UTIL, "pkg/core.py": UTIL}, "base")
    tip = repo.commit("feature", {"app.py": "from pkg.util import helper\nfrom pkg.core import other\n"}, parent=fork)
    target = repo.commit("main", {"pkg/core.py": UTIL + "\n\ndef more():\n    return 3\n"}, "target work")
    read: list[str] = []

    class Recording(ModuleIndex):
        def names(self, git: Git, path: str, blob: str) -> frozenset[str] | None:
            read.append(path)
            return super().names(git, path, blob)

    git = Git(RepoLocation.discover(repo.path))
    try:
        merged = git.commit_tree(git.merge_tree(tip, target).tree, [tip, target], "merge")
        assert removed_names(git, tip, target, merged, git.tree_changes(target, merged), Recording(512 * 1024)) == []
    finally:
        git.close()
    assert "pkg/core.py" in read, "the target changed core: its names are read"
    assert "pkg/util.py" not in read


def test_a_module_the_target_moved_away_is_caught(repo: Repo, align: Aligner) -> None:
    fork = repo.commit("main", {"src/pkg/__init__.py": "", "src/pkg/util.py": UTIL}, "base")
    repo.commit("feature", {"src/pkg/app.py": "import pkg.util\n\nVALUE = pkg.util.other()\n"}, parent=fork)
    moving = repo.commit("main", {"src/pkg/util.py": None, "src/pkg/tools.py": UTIL}, "Move util to tools")
    (finding,) = align("feature")["feature"].findings
    assert (finding.code, finding.file, finding.line) == ("name_removed_by_other_side", "src/pkg/app.py", 1)
    assert f"imports `util` from `pkg`, which the target removed in {moving[:12]}" in finding.message


def test_a_module_gone_from_under_a_from_import_is_caught(repo: Repo, align: Aligner) -> None:
    fork = repo.commit("main", {"pkg/util.py": UTIL}, "base")
    repo.commit("feature", {"app.py": "from pkg.util import helper\n"}, parent=fork)
    repo.commit("main", {"pkg/util.py": None, "pkg/tools.py": UTIL}, "Move util to tools")
    (finding,) = align("feature")["feature"].findings
    assert finding.message.startswith("imports `helper` from `pkg.util`, a module the target removed or renamed in ")


@pytest.mark.parametrize(
    ("module", "user"),
    [
        (UTIL, "from pkg.util import helper\n"),  # the name is still there
        (RENAMED, "from pkg.util import assist\n"),  # the branch follows the rename
        (RENAMED + "\n\ndef __getattr__(name):\n    return name\n", "from pkg.util import helper\n"),
        (RENAMED + "\nfrom pkg.extra import *\n", "from pkg.util import helper\n"),
        (RENAMED + "\nglobals()['helper'] = assist\n", "from pkg.util import helper\n"),
        (RENAMED, "try:\n    from pkg.util import helper\nexcept ImportError:\n    helper = None\n"),
        (RENAMED, "from pkg import util\n\nutil.helper = lambda: 0\nutil.helper()\n"),
        (RENAMED, "from pkg import util\n\n\ndef f(util):\n    return util.helper()\n"),
        (RENAMED, "import requests\nfrom requests.util import helper\nimport os.path\nos.path.nothing\n"),
    ],
    ids=["kept", "followed", "module-getattr", "star-import", "dynamic", "try", "assigned", "shadowed", "external"],
)
def test_references_that_resolve_or_cannot_be_judged_pass(repo: Repo, align: Aligner, module: str, user: str) -> None:
    fork = repo.commit("main", {"pkg/__init__.py": "", "pkg/util.py": UTIL, "pkg/extra.py": ""}, "base")
    repo.commit("feature", {"app.py": user}, parent=fork)
    repo.commit("main", {"pkg/util.py": module})
    assert align("feature")["feature"].status is Status.COMPLETED


def test_a_reference_broken_on_its_own_side_already_is_not_the_merge_s(repo: Repo, align: Aligner) -> None:
    fork = repo.commit("main", {"pkg/__init__.py": "", "pkg/util.py": UTIL}, "base")
    repo.commit("feature", {"app.py": "from pkg.util import missing\n"}, parent=fork)
    repo.commit("main", {"pkg/util.py": RENAMED})
    assert align("feature")["feature"].status is Status.COMPLETED


def test_the_name_check_can_be_switched_off(repo: Repo, align: Aligner) -> None:
    fork = repo.commit("main", {"pkg/__init__.py": "", "pkg/util.py": UTIL}, "base")
    repo.commit("feature", {"app.py": "from pkg.util import helper\n"}, parent=fork)
    repo.commit("main", {"pkg/util.py": RENAMED})
    assert align("feature", config=settings(detect_removed_names=False))["feature"].status is Status.COMPLETED


def test_a_name_both_sides_kept_but_the_merge_lost_is_caught_without_a_culprit(repo: Repo, align: Aligner) -> None:
    module = "helper = 1\n\n\n\n\ndef helper():\n    return 2\n"
    fork = repo.commit("main", {"m.py": module}, "base")
    repo.commit(
        "feature", {"m.py": module.replace("helper = 1\n", ""), "use.py": "from m import helper\n"}, parent=fork
    )
    repo.commit("main", {"m.py": module.replace("def helper():\n    return 2\n", "")})
    (finding,) = align("feature")["feature"].findings
    assert (finding.file, finding.message) == (
        "use.py",
        "imports `helper` from `m`, which the merged `m` no longer has",
    )


def test_a_module_two_source_roots_define_is_not_judged(repo: Repo, align: Aligner) -> None:
    fork = repo.commit("main", {"app/util.py": UTIL, "src/app/util.py": UTIL}, "base")
    repo.commit("feature", {"src/run.py": "from app.util import helper\n"}, parent=fork)
    repo.commit("main", {"app/util.py": RENAMED, "src/app/util.py": RENAMED})
    assert align("feature")["feature"].status is Status.COMPLETED


@pytest.mark.parametrize(
    ("root", "pyproject"),
    [
        ("src/", ""),
        ("lib/", '[tool.setuptools]\npackage-dir = {"" = "lib"}\n'),
        ("python/", '[tool.setuptools.packages.find]\nwhere = ["./python/", "../elsewhere", 3]\n'),
        ("src/", "[tool.setuptools\n"),
    ],
    ids=["src", "package-dir", "find-where", "unreadable-pyproject"],
)
def test_a_package_under_a_source_root_is_found_from_files_outside_it(
    repo: Repo, align: Aligner, root: str, pyproject: str
) -> None:
    """``tests/`` and scripts import the package of a ``src/`` layout (or the root pyproject.toml declares)."""
    base = {f"{root}pkg/__init__.py": "", f"{root}pkg/core.py": UTIL, "pyproject.toml": pyproject}
    fork = repo.commit("main", base, "base")
    repo.commit("feature", {"tests/test_h.py": "from pkg.core import helper\n"}, parent=fork)
    repo.commit("main", {f"{root}pkg/core.py": RENAMED}, "Rename helper")
    (finding,) = align("feature")["feature"].findings
    assert (finding.code, finding.file, finding.line) == ("name_removed_by_other_side", "tests/test_h.py", 1)


def test_a_module_a_flat_package_and_a_source_root_both_hold_is_not_judged(repo: Repo, align: Aligner) -> None:
    fork = repo.commit("main", {"pkg/core.py": UTIL, "src/pkg/core.py": UTIL}, "base")
    repo.commit("feature", {"tests/test_h.py": "from pkg.core import helper\n"}, parent=fork)
    repo.commit("main", {"src/pkg/core.py": RENAMED})
    assert align("feature")["feature"].status is Status.COMPLETED


def test_a_package_the_target_moved_into_src_still_resolves(repo: Repo, align: Aligner) -> None:
    fork = repo.commit("main", {"pkg/__init__.py": "", "pkg/core.py": UTIL}, "base")
    repo.commit("feature", {"tests/test_h.py": "from pkg.core import helper\n"}, parent=fork)
    moved = {"pkg/__init__.py": None, "pkg/core.py": None, "src/pkg/__init__.py": "", "src/pkg/core.py": UTIL}
    repo.commit("main", moved, "Move to a src layout")
    assert align("feature")["feature"].status is Status.COMPLETED


@pytest.mark.parametrize(
    "key", ["detect_python_compile", "detect_python_flakes", "detect_removed_names", "detect_other_languages"]
)
def test_a_switch_that_is_not_a_boolean_is_refused_naming_it(key: str) -> None:
    with pytest.raises(ConfigError, match=f'orchestration.{key}.*expected true or false, got "yes"'):
        settings(**{key: "yes"})


def test_a_name_the_branch_removed_while_still_using_it_is_the_branch_s_own_breakage(
    repo: Repo, align: Aligner
) -> None:
    app = "from pkg.util import helper\n\n\n\n\ndef run():\n    return helper()\n"
    fork = repo.commit("main", {"pkg/__init__.py": "", "pkg/util.py": UTIL, "app.py": app}, "base")
    repo.commit("feature", {"pkg/util.py": RENAMED}, parent=fork)
    repo.commit("main", {"app.py": app.replace("return helper()", "return helper() + 1")})
    assert align("feature")["feature"].status is Status.COMPLETED


def test_a_target_file_importing_from_a_module_the_branch_deleted_is_caught(repo: Repo, align: Aligner) -> None:
    fork = repo.commit("main", {"pkg/__init__.py": "", "pkg/util.py": UTIL}, "base")
    deleting = repo.commit("feature", {"pkg/util.py": None, "pkg/tools.py": UTIL}, "Move util", parent=fork)
    repo.commit("main", {"pkg/run.py": "from pkg import util\n"})
    (finding,) = align("feature")["feature"].findings
    assert (finding.file, finding.line) == ("pkg/run.py", 1)
    assert finding.message.startswith(f"imports `util` from `pkg`, which this branch removed in {deleting[:12]}")
