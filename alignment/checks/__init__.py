"""In-memory checks of file contents read from git objects: what a clean merge can still break.

``python``: syntax, what only the compiler rejects, and pyflakes' signs of merge damage. ``syntax``: other
languages through tree-sitter grammars, loaded on first use. ``names``: imports and module attributes one
side uses that the other side removed, across files.
"""

# Finding codes whose message names what they are about: two findings are the same one when code and message
# match, so a merge that adds a second undefined name is caught even where the file had another already.
NAMED_CODES = frozenset({"duplicate_definition", "duplicate_dict_key", "undefined_name"})
