"""What the cross-side names check reads from one Python file: the references it makes, the names it defines."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from alignment.checks.interface import ModuleFile
from alignment.detect import check_file


def scan(source: str, path: str = "pkg/sub/mod.py") -> ModuleFile:
    return ModuleFile.scan(path, ast.parse(source))


def refs(source: str, path: str = "pkg/sub/mod.py") -> set[tuple[tuple[str, ...], str, int, bool]]:
    return {(ref.bases, ref.name, ref.line, ref.attribute) for ref in scan(source, path).references}


def test_imports_map_to_every_source_root_above_the_file() -> None:
    assert refs("from app.util import helper\n") == {
        (("app/util", "pkg/sub/app/util", "pkg/app/util"), "helper", 1, False)
    }
    assert refs("from . import util\nfrom ..core import run\n") == {
        (("pkg/sub",), "util", 1, False),
        (("pkg/core",), "run", 2, False),
    }


def test_module_attributes_follow_import_chains_and_aliases() -> None:
    source = "import app.util\nimport app.tools as t\nfrom . import near\n\napp.util.helper()\nt.run()\nnear.go()\n"
    assert refs(source, "top.py") == {
        (("app",), "util", 1, False),
        (("app",), "tools", 2, False),
        (("app/util",), "helper", 5, True),
        (("app/tools",), "run", 6, True),
        (("near",), "go", 7, True),
    }  # ``from . import near`` itself names no package in a top-level file: only the use is kept


def test_only_a_try_body_is_optional_code() -> None:
    """Imports and uses inside a ``try`` body (at any depth) are skipped; its handlers, ``else`` and
    ``finally`` are ordinary code, and so is a ``try`` nested in a handler outside its own body."""
    source = (
        "import app\n"
        "try:\n    if app:\n        app.guarded()\n        from app import inner\n"
        "except ImportError:\n    app.handler()\n    try:\n        app.nested()\n    except OSError:\n"
        "        from app import fallback\n"
        "else:\n    app.other()\nfinally:\n    app.last()\n"
    )
    found = {(ref.name, ref.line) for ref in scan(source, "top.py").references}
    assert found == {("handler", 7), ("fallback", 11), ("other", 13), ("last", 15)}


@pytest.mark.parametrize(
    "source",
    [
        "import os.path\nfrom collections import abc\nos.path.join\n",  # the standard library
        "from .... import x\n",  # above the repository's top
        "from app import *\n",  # a star import is not followed
        "try:\n    from app.util import helper\nexcept ImportError:\n    pass\n",  # optional imports
        "import app as a\nimport other as a\na.x\n",  # one alias, two modules
        "import app\n\ndef f(app):\n    return app.x\n",  # rebound
        "import app\napp.x = 1\nprint(app.x)\n",  # assigned by the file itself
        "import app\n(app.x.y)\n",  # not a plain name chain down to a module... x is; y is not taken
    ],
)
def test_what_cannot_be_judged_is_not_a_reference(source: str) -> None:
    found = {(ref.name, ref.attribute) for ref in scan(source, "a/b/c.py").references}
    assert found <= {("x", True)}
    assert ("y", True) not in found


def test_names_a_module_defines() -> None:
    source = (
        "import os, a.b as c\nfrom x import y as z\nA = B = 1\n(C, [D]) = 2, [3]\nE: int = 4\n"
        "if os.sep:\n    def F(): pass\nelse:\n    class G: pass\n"
        "try:\n    H = 1\nexcept ImportError as error:\n    I = 2\nfinally:\n    J = 3\n"
        "for K in []:\n    L = 1\nwith open('f') as M:\n    pass\nwhile False:\n    N = 1\n"
        "match 1:\n    case 1:\n        O = 1\n"
        "def f():\n    global P\n    P = 1\n    local = 2\n"
        "class Q:\n    inner = 1\n(R := 5)\n"
    )
    assert scan(source).names == frozenset(
        ["os", "c", "z", "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "f", "Q", "R"]
    )


@pytest.mark.parametrize(
    "source",
    [
        "def __getattr__(name):\n    return name\n",
        "from other import *\n",
        "globals()['x'] = 1\n",
        "import sys\nsys.modules[__name__] = object()\n",
        "exec('x = 1')\n",
    ],
)
def test_modules_whose_names_the_text_cannot_tell(source: str) -> None:
    assert scan(source).names is None


def test_a_class_may_define_getattr() -> None:
    assert scan("class K:\n    def __getattr__(self, name):\n        return name\n").names == frozenset({"K"})


def test_python_that_does_not_parse_beyond_the_binary_probe_is_a_syntax_error() -> None:
    content = b"x = 1\n" * 2000 + b"y = '\x00'\n"
    assert [finding.code for finding in check_file("a.py", content)] == ["python_syntax_error"]


def test_other_languages_report_the_first_error_they_mark() -> None:
    (missing,) = check_file("a.h", b"class K { int f() { return 1 } };\n")
    assert (missing.code, missing.message) == ("syntax_error", "invalid C++: missing `;`")
    (unexpected,) = check_file("Main.java", b"class Main {\n  void f() { int x = ; }\n}\n")
    assert (unexpected.line, unexpected.message) == (2, "invalid Java: unexpected `=`")
    (twice,) = check_file("a.go", b"package a\ntype (\n\tA int\n\tB int\n)\ntype A string\n")
    assert (twice.code, twice.line) == ("duplicate_definition", 6)
    assert check_file("a.rb", b"def f\n  1\nend\n") == []
    assert check_file("a.cs", b"class K { void F() { } }\n") == []
    assert check_file("a.tsx", b"export const A = () => <div>{1}</div>;\n") == []


def test_parsers_load_only_for_the_files_that_need_them() -> None:
    code = (
        "import sys\n"
        "from alignment.detect import check_file\n"
        "def loaded():\n"
        "    return sorted(m for m in sys.modules if m.startswith(('tree_sitter', 'pyflakes')))\n"
        "check_file('a.txt', b'x\\n'); check_file('a.json', b'{}'); print(loaded())\n"
        "check_file('a.go', b'package a\\n'); print(loaded())\n"
        "check_file('a.py', b'x = 1\\n'); print(loaded())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    nothing, go, python = (ast.literal_eval(line) for line in done.stdout.splitlines())
    assert nothing == []
    assert go == ["tree_sitter", "tree_sitter._binding", "tree_sitter_go", "tree_sitter_go._binding"]
    assert {"pyflakes", "pyflakes.checker"} <= set(python) - set(go)
