"""Syntax of files in other languages, through tree-sitter and the official per-language grammar packages.

Each grammar ships compiled in its PyPI wheel (``tree-sitter-c``, ``tree-sitter-go``, ...): nothing is
downloaded or built at run time. ``tree_sitter`` and a grammar are imported on the first file of that
language, so a run whose merges combine no such file never loads them. Where a grammar shows top-level
definitions plainly, a name defined twice is reported too (two sides that each added ``func extra()``).

Tree-sitter recovers from errors and marks them (``ERROR`` and ``MISSING`` nodes); grammars also reject
some valid code (heavy preprocessor use in C, new syntax). A finding counts only when neither side's
version of the file had one, so what a grammar cannot read on both sides stays a warning.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alignment.model import Finding, Severity

if TYPE_CHECKING:
    from tree_sitter import Language, Node

Definitions = Callable[["Node"], Iterator[tuple[str, "Node"]]]


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text is not None else ""


def _c_definitions(root: Node) -> Iterator[tuple[str, Node]]:
    """Functions defined at file level (C has no overloading: a name defined twice does not link)."""
    for node in root.named_children:
        if node.type == "function_definition":
            declarator = node.child_by_field_name("declarator")
            while declarator is not None and declarator.type != "identifier":
                declarator = declarator.child_by_field_name("declarator")
            if declarator is not None:
                yield _text(declarator), node


def _go_definitions(root: Node) -> Iterator[tuple[str, Node]]:
    """Functions, methods (by receiver type) and types; ``init`` and ``_`` may repeat."""
    for node in root.named_children:
        if node.type == "function_declaration":
            name = _text(node.child_by_field_name("name"))
            if name not in ("init", "_"):
                yield name, node
        elif node.type == "method_declaration":
            receiver = _text(node.child_by_field_name("receiver")).split()[-1:] or [""]
            owner = receiver[0].strip("()*").split("[")[0]
            yield f"{owner}.{_text(node.child_by_field_name('name'))}", node
        elif node.type == "type_declaration":
            for spec in node.named_children:
                if spec.type == "type_spec":
                    yield _text(spec.child_by_field_name("name")), spec


_RUST_VALUES = ("function_item", "const_item", "static_item")
_RUST_TYPES = ("struct_item", "enum_item", "union_item", "trait_item", "type_item", "mod_item")


# Built-in attributes after which the item is always there as written; any other (``cfg``, a macro's, a tool's) may
# remove or rename it. ``cfg_attr`` applies its attributes or none: it keeps the item when all of them do.
_RUST_KEEPING = frozenset(
    {"allow", "cold", "deny", "deprecated", "derive", "doc", "expect", "forbid", "inline", "must_use",
     "non_exhaustive", "repr", "track_caller", "warn"}
)  # fmt: skip


def _rust_keeps(attribute: Node) -> bool:
    """Whether the item under ``attribute`` (``#[...]``'s content) is there as written whatever it expands to."""
    path = attribute.named_children[:1]
    name = _text(path[0]) if path else ""
    arguments = attribute.child_by_field_name("arguments")
    if name != "cfg_attr" or arguments is None:
        return name in _RUST_KEEPING
    groups: list[list[Node]] = [[]]  # the predicate, then each attribute: tokens between top-level commas
    for token in arguments.children[1:-1]:
        if token.type == ",":
            groups.append([])
        else:
            groups[-1].append(token)
    applied = [group for group in groups[1:] if group]
    return bool(applied) and all(
        group[0].type == "identifier"
        and _text(group[0]) in _RUST_KEEPING
        and all(token.type != "::" for token in group)
        for group in applied
    )


def _rust_definitions(root: Node) -> Iterator[tuple[str, Node]]:
    """Items of the file's module, per namespace (a unit or tuple struct is a value too: its constructor); an item
    is skipped when one of the attributes above it (comments may sit among them) may remove or rename it (a
    ``#[cfg(...)]`` variant, say)."""
    conditional = False
    for node in root.named_children:
        if node.type in ("line_comment", "block_comment"):
            continue
        if node.type == "attribute_item":
            conditional |= not node.named_children or not _rust_keeps(node.named_children[0])
            continue
        skipped, conditional = conditional, False
        if skipped or node.type not in _RUST_VALUES + _RUST_TYPES:
            continue
        name = _text(node.child_by_field_name("name"))
        if node.type in _RUST_VALUES:
            yield name, node
            continue
        yield f"type {name}", node
        body = node.child_by_field_name("body")
        if node.type == "struct_item" and (body is None or body.type == "ordered_field_declaration_list"):
            yield name, node


_JS_DEFINITIONS = ("function_declaration", "generator_function_declaration", "class_declaration")


def _js_definitions(root: Node) -> Iterator[tuple[str, Node]]:
    """Functions and classes declared at module level (TypeScript overload signatures are other nodes)."""
    for node in root.named_children:
        declaration = node.child_by_field_name("declaration") if node.type == "export_statement" else node
        if declaration is not None and declaration.type in _JS_DEFINITIONS:
            yield _text(declaration.child_by_field_name("name")), declaration


def _shell_definitions(root: Node) -> Iterator[tuple[str, Node]]:
    """Functions defined at script level: a second one silently replaces the first."""
    for node in root.named_children:
        if node.type == "function_definition":
            yield _text(node.child_by_field_name("name")), node


@dataclass(frozen=True)
class Grammar:
    """A language: its name in messages, the grammar package's module and function, its top-level names."""

    name: str
    module: str
    function: str = "language"
    definitions: Definitions | None = None


_C = Grammar("C", "tree_sitter_c", definitions=_c_definitions)
_CPP = Grammar("C++", "tree_sitter_cpp")
_JS = Grammar("JavaScript", "tree_sitter_javascript", definitions=_js_definitions)
_TS = Grammar("TypeScript", "tree_sitter_typescript", "language_typescript", _js_definitions)
_SHELL = Grammar("shell", "tree_sitter_bash", definitions=_shell_definitions)

GRAMMARS: dict[str, Grammar] = {
    ".c": _C,
    ".h": _CPP,  # C and C++ headers share the suffix; C++'s grammar reads both
    **dict.fromkeys((".cc", ".cpp", ".cxx", ".c++", ".hh", ".hpp", ".hxx", ".h++"), _CPP),
    ".go": Grammar("Go", "tree_sitter_go", definitions=_go_definitions),
    ".rs": Grammar("Rust", "tree_sitter_rust", definitions=_rust_definitions),
    ".java": Grammar("Java", "tree_sitter_java"),
    **dict.fromkeys((".js", ".mjs", ".cjs", ".jsx"), _JS),
    **dict.fromkeys((".ts", ".mts", ".cts"), _TS),
    ".tsx": Grammar("TypeScript", "tree_sitter_typescript", "language_tsx", _js_definitions),
    **dict.fromkeys((".sh", ".bash"), _SHELL),
    ".rb": Grammar("Ruby", "tree_sitter_ruby"),
    ".cs": Grammar("C#", "tree_sitter_c_sharp"),
}


@functools.cache
def _language(module: str, function: str) -> Language:
    """A grammar, imported on first use."""
    from tree_sitter import Language  # noqa: PLC0415 - loaded only when a merge combined such a file

    return Language(getattr(importlib.import_module(module), function)())


def syntax_findings(path: str, text: str) -> list[Finding]:
    """``syntax_error`` at the first error tree-sitter marks, else ``duplicate_definition`` per name defined twice."""
    grammar = GRAMMARS[os.path.splitext(path)[1].lower()]
    from tree_sitter import Parser  # noqa: PLC0415

    root = Parser(_language(grammar.module, grammar.function)).parse(text.encode("utf-8", "replace")).root_node
    if root.has_error:
        return [_syntax_error(path, grammar, root)]
    if grammar.definitions is None:
        return []
    first: dict[str, Node] = {}
    findings: dict[int, Finding] = {}  # by node: one finding for a definition that repeats two names
    for name, node in grammar.definitions(root):
        if first.setdefault(name, node) is not node and node.id not in findings:
            message = f"`{name}` is defined twice at the top level of this {grammar.name} file"
            findings[node.id] = Finding("duplicate_definition", Severity.ERROR, message, path, node.start_point[0] + 1)
    return list(findings.values())


def _syntax_error(path: str, grammar: Grammar, root: Node) -> Finding:
    """The first node tree-sitter marked: an unexpected stretch of text, or a token it had to assume."""
    node = root
    while not (node.is_error or node.is_missing):
        inner = next((child for child in node.children if child.has_error or child.is_missing), None)
        if inner is None:
            break
        node = inner
    if node.is_missing:
        problem = f"missing `{node.type}`"
    else:
        snippet = _text(node).strip().splitlines()[0][:40] if _text(node).strip() else node.type
        problem = f"unexpected `{snippet}`"
    return Finding("syntax_error", Severity.ERROR, f"invalid {grammar.name}: {problem}", path, node.start_point[0] + 1)
