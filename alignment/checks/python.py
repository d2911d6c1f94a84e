"""Python checks of one file: syntax, what only the compiler rejects, and pyflakes' signs of merge damage.

``ast.parse`` accepts code that ``compile`` rejects: two sides that each add the same keyword argument to one
call, or the same parameter to one ``def``, give ``keyword argument repeated`` / ``duplicate argument``, and
``return``/``yield``/``await`` outside a function, ``nonlocal`` at module level or a name assigned before its
``global`` are found only by the compiler. Compiling the parsed tree finds exactly what compiling the source
finds, with one parse; no bytecode is written. Pyflakes adds three signs that two sides' edits collided:
a definition replaced before anything used it, a dict literal with a key twice, a name nothing defines.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import threading
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from alignment.model import Finding, Severity

# Compiler warnings (``"is" with a literal``, invalid escapes) are not findings, and under ``-W error`` they
# would turn into SyntaxErrors; ``catch_warnings`` changes process-wide state, so one thread at a time.
_QUIET = threading.Lock()

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_CODES = {
    "RedefinedWhileUnused": "duplicate_definition",
    "MultiValueRepeatedKeyLiteral": "duplicate_dict_key",
    "MultiValueRepeatedKeyVariable": "duplicate_dict_key",
    "UndefinedName": "undefined_name",
}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No compiler warnings shown or raised, one thread at a time."""
    with _QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@functools.lru_cache(maxsize=8)
def _parsed(text: str, path: str) -> ast.Module | Finding:
    """The syntax tree, or the ``python_syntax_error``; kept for the few other checks of the same content
    (the names check reads the files the merge combined again)."""
    with _quiet():
        try:
            return ast.parse(text, filename=path)
        except SyntaxError as exc:
            return Finding("python_syntax_error", Severity.ERROR, f"invalid Python: {exc.msg}", path, exc.lineno)
        except ValueError as exc:  # null bytes
            return Finding("python_syntax_error", Severity.ERROR, f"invalid Python: {exc}", path, None)
        except (RecursionError, MemoryError):  # Python 3.11's parser: MemoryError past its own stack (6,000)
            return Finding("python_syntax_error", Severity.ERROR, "Python nested too deeply to parse", path, None)


def parse_quietly(text: str, path: str) -> ast.Module | None:
    """The module's syntax tree, None when it does not parse."""
    tree = _parsed(text, path)
    return tree if isinstance(tree, ast.Module) else None


def python_findings(path: str, text: str, *, compile_check: bool = True, flakes: bool = True) -> list[Finding]:
    """``python_syntax_error``, else ``python_compile_error`` (with ``compile_check``), else pyflakes' findings."""
    tree = _parsed(text, path)
    if isinstance(tree, Finding):
        return [tree]
    if compile_check:
        with _quiet():
            try:
                compile(tree, path, "exec", dont_inherit=True)
            except SyntaxError as exc:
                message = f"Python does not compile: {exc.msg}"
                return [Finding("python_compile_error", Severity.ERROR, message, path, exc.lineno)]
            except RecursionError:  # as when Python imports it
                message = "Python does not compile: nested too deeply"
                return [Finding("python_compile_error", Severity.ERROR, message, path, None)]
    return list(_flake_findings(path, tree)) if flakes else []


def _flake_findings(path: str, tree: ast.Module) -> Iterable[Finding]:
    """Pyflakes' redefinitions of unused functions and classes, repeated dict keys and undefined names,
    one finding per name (at its first line)."""
    from pyflakes import checker  # noqa: PLC0415 - loaded only when a merge combined a Python file

    try:
        messages = sorted(checker.Checker(tree, filename=path).messages, key=lambda m: (m.lineno, m.col))
    except RecursionError:  # a tree deeper than pyflakes' recursion reaches, though Python compiles it: unchecked
        return
    definitions = set()
    if any(type(message).__name__ == "RedefinedWhileUnused" for message in messages):
        definitions = {(node.lineno, node.name) for node in ast.walk(tree) if isinstance(node, _DEFINITIONS)}
    seen: set[tuple[str, str]] = set()
    for message in messages:
        found = _finding(path, message, definitions)
        if found is not None and (found.code, found.message) not in seen:
            seen.add((found.code, found.message))
            yield found


def _finding(path: str, message: Any, definitions: set[tuple[int, str]]) -> Finding | None:
    """The finding of one pyflakes message, None for the kinds that do not reveal merge damage."""
    code = _CODES.get(type(message).__name__)
    subject = message.message_args[0] if code else None
    name = str(subject)
    if code == "duplicate_definition" and (message.lineno, name) in definitions:
        text = f"`{name}` is defined again before anything used the earlier definition, which it replaces"
    elif code == "duplicate_dict_key":
        key = repr(subject) if type(message).__name__.endswith("Literal") else f"`{name}`"
        text = f"dict key {key} repeated with different values"
    elif code == "undefined_name":
        text = f"undefined name `{name}`"
    else:  # another kind, or a redefined import: harmless when both sides add the same one
        return None
    return Finding(code, Severity.ERROR, text, path, message.lineno)
