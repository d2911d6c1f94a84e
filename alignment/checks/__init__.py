"""In-memory checks of file contents read from git objects: what a clean merge can still break.

``python``: syntax, what only the compiler rejects, and pyflakes' signs of merge damage. ``syntax``: other
languages through tree-sitter grammars, loaded on first use. ``names``: imports and module attributes one
side uses that the other side removed, across files.
"""

# Finding codes whose message names what they are about: two findings are the same one when code and message
# match, so a merge that adds a second undefined name is caught even where the file had another already.
NAMED_CODES = frozenset({"duplicate_definition", "duplicate_dict_key", "undefined_name"})


def file_text(content: bytes) -> str:
    """A file's text: UTF-8 (bytes that are not become U+FFFD) without a leading byte order mark.

    The BOM marks the encoding, it is not content: Python's compiler, PyYAML, TOML parsers (toml-lang/toml#437)
    and tree-sitter skip it, and RFC 8259 lets a JSON parser ignore it. Read as a character, Python, JSON and
    TOML refused it in every version of the file, so an error the merge made seemed to predate the merge.
    Dropping it moves no line.
    """
    return content.decode("utf-8-sig", "replace")
