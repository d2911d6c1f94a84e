"""Branch names: git's validity rules, a safe, collision-free file name for each branch, and a printable form
of any name, path or message.

``invalid_branch_name`` is ``git check-ref-format --branch`` in pure Python (one git process per branch would
cost seconds on 1000 branches); a property test compares the two on random names. Shorthands that
``--branch`` expands (``@``, ``@{-1}``) are refused: names read from a file must name a branch literally.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

_FORBIDDEN_CHARACTERS = frozenset(" ~^:?*[\\")
_SAFE_FILE_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_MAX_FILE_STEM = 120
REF_COMPONENT_BYTES = 250  # a loose ref is a file locked as ``<name>.lock``: 255 bytes with that suffix


def _has_control_character(name: str) -> bool:
    return any(ord(character) < 0x20 or ord(character) == 0x7F for character in name)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_TEXT = "contains a lone surrogate (half of a UTF-16 pair), which is not text"


def lone_surrogate(text: str) -> bool:
    """Half of a UTF-16 pair (JSON's ``"\\ud800"``): not text, so no UTF-8 ref name, key or argument can hold it."""
    return _LONE_SURROGATE.search(text) is not None


def enclosing_names(name: str, *, namespace_parts: int = 0) -> list[str]:
    """The names a ref would have to be a folder of for ``name`` to exist: ``a`` and ``a/b`` for ``a/b/c``
    (git cannot hold a ref and a ref inside its name). The first ``namespace_parts`` parts (``refs/heads``)
    are folders anyway, not names."""
    parts = name.split("/")
    return ["/".join(parts[:end]) for end in range(namespace_parts + 1, len(parts))]


def _forbidden_character(name: str) -> str | None:
    return next((character for character in name if character in _FORBIDDEN_CHARACTERS), None)


_RULES: tuple[tuple[Callable[[str], object], str], ...] = (
    (lambda name: not name, "is empty"),
    (lambda name: name.startswith("-"), "starts with '-'"),
    (lambda name: name in ("HEAD", "@"), "is reserved by git"),
    (_has_control_character, "contains a control character"),
    (lone_surrogate, NOT_TEXT),
    (_forbidden_character, "contains one of ' ~^:?*[\\'"),
    (lambda name: ".." in name, "contains '..'"),
    (lambda name: "@{" in name, "contains '@{'"),
    (lambda name: "//" in name or name.startswith("/") or name.endswith("/"), "has an empty path component"),
    (lambda name: name.endswith("."), "ends with '.'"),
    (lambda name: any(part.startswith(".") for part in name.split("/")), "has a path component starting with '.'"),
    (lambda name: any(part.endswith(".lock") for part in name.split("/")), "has a path component ending in '.lock'"),
)


def invalid_branch_name(name: str) -> str | None:
    """Why ``name`` is not a valid branch name, or None when it is."""
    return next((reason for broken, reason in _RULES if broken(name)), None)


def branch_file_stem(name: str) -> str:
    """A file name stem for ``name`` that no other branch name maps to.

    Letters, digits, ``-``, ``_`` and inner ``.`` stay; every other byte of the UTF-8 name becomes ``%XX``
    (``a/b`` -> ``a%2Fb``, next to ``a-b``), which is reversible and therefore collision-free. Over-long
    results are cut and made unique again by a hash of the full name.
    """
    pieces = []
    for index, byte in enumerate(name.encode("utf-8")):
        character = chr(byte)
        leading_dot = index == 0 and character == "."
        pieces.append(character if character in _SAFE_FILE_CHARACTERS and not leading_dot else f"%{byte:02X}")
    stem = "".join(pieces)
    if len(stem) > _MAX_FILE_STEM:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
        stem = f"{stem[: _MAX_FILE_STEM - 17]}~{digest}"
    return stem


def fit_ref_name(stem: str, tail: str = "") -> str:
    """``stem + tail`` as a ref name each of whose ``/``-separated components fits in ``REF_COMPONENT_BYTES``.

    An over-long component of ``stem`` keeps its start and ends in a hash of the whole name: different
    names stay different, and one name is always shortened the same way. ``tail`` (no ``/``) is kept whole.
    """
    parts = stem.split("/")
    room = [REF_COMPONENT_BYTES] * (len(parts) - 1) + [REF_COMPONENT_BYTES - len(tail.encode("utf-8"))]
    digest = hashlib.sha256((stem + tail).encode("utf-8")).hexdigest()[:16]
    fitted = [
        part
        if len(part.encode("utf-8")) <= limit
        else part.encode("utf-8")[: limit - len(digest) - 1].decode("utf-8", "ignore") + "-" + digest
        for part, limit in zip(parts, room, strict=True)
    ]
    return "/".join(fitted) + tail


_SPECIAL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNPRINTABLE = (
    *range(0x20),  # C0
    *range(0x7F, 0xA0),  # DEL and C1 (0x9B is a terminal's CSI)
    0x061C,  # the bidirectional marks and overrides: text that displays in another order than it reads
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x2028,  # line and paragraph separators
    0x2029,
)
_NOT_UTF8 = {code: f"\\x{code - 0xDC00:02x}" for code in range(0xDC80, 0xDD00)}  # bytes git gave that were not UTF-8
_UNDECODED_BYTE = re.compile("[\udc80-\udcff]")  # what _NOT_UTF8 maps
_PRINTABLE: dict[int, str] = {
    **{
        code: _SPECIAL_ESCAPES.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        for code in _UNPRINTABLE
    },
    **_NOT_UTF8,
}


def as_utf8(text: str) -> str:
    """``text`` with the bytes that were not UTF-8 (decoded with ``surrogateescape``) written ``\\xNN``, as
    ``printable`` shows them: a file must be valid UTF-8, and such a byte has no character to write."""
    return _UNDECODED_BYTE.sub(lambda found: _NOT_UTF8[ord(found[0])], text)  # 14x translate's speed on a page


def json_text(value: Any, indent: int | None = None) -> str:
    """``value`` as JSON that a UTF-8 file can hold: a lone surrogate (a byte that was not UTF-8, decoded with
    ``surrogateescape``, in a path git gave) is written as its ``\\u`` escape, which reads back as the same
    string; every other character as itself."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda found: f"\\u{ord(found[0]):04x}", text)


def printable(text: str) -> str:
    """``text`` with every control character written as an escape (``\\r``, ``\\x1b``, ``\\u202e``).

    File paths, commit subjects and messages are data: shown raw, a ``\\r`` or ``\\n`` would break a
    Markdown table row and inject markup, and an escape sequence would drive the terminal (set its title,
    move its cursor). Bytes that were not UTF-8 (decoded with ``surrogateescape``) show as ``\\xNN``.
    The change documents and the pytest front end both print data through this.
    """
    return text.translate(_PRINTABLE)
