"""Plain data (decoded YAML or JSON) checked against a msgspec model, every problem of a file at once.

msgspec stops at the first problem and words it for programmers (``Expected `int` >= 1, got `0` - at
`$.x```). Here each problem is ``where: expected <what>, got <value>``, with the expectation worded from
the same type that the JSON Schema is generated from, and all problems of a file are collected, so a
hand-written file is fixed in one pass. Unknown keys of a model that forbids them name the closest known key.
"""

from __future__ import annotations

import difflib
import enum
import functools
import types as pytypes
import typing
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import msgspec
import msgspec.inspect as types

from alignment.errors import kind_of, shown
from alignment.names import NOT_TEXT, lone_surrogate

Check = Callable[[Any], Iterable[tuple[str, str]]]
"""A rule past the type (a ref name git accepts, a command that splits): the ``(suffix of where, problem)``
of each way a value that already has the right type breaks it."""


def closest(key: str, known: Collection[str]) -> str:
    """The hint for an unknown key: the closest known one, else all of them."""
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}"


def problems_of(
    data: Mapping[str, Any], model: type[msgspec.Struct], where: str, checks: Mapping[str, Check]
) -> list[str]:
    """Every problem of ``data`` read as ``model`` (``where.key: what``), nested models included.

    ``checks`` apply by field name, at any depth, to values whose type is right.
    """
    fields = _fields(model)
    not_text = [key for key in data if isinstance(key, str) and lone_surrogate(key)]  # msgspec cannot read them
    problems = [f"{_at(where, shown(key))}: {NOT_TEXT}" for key in not_text]
    if model.__struct_config__.forbid_unknown_fields:
        known = sorted(fields)
        problems += [
            f"{_at(where, key)}: unknown key ({closest(str(key), known)})"
            for key in data
            if key not in fields and key not in not_text
        ]
    for name, field in fields.items():
        if name in data:
            problems += _value_problems(data[name], field.type, _at(where, name), checks.get(name), checks)
        elif field.required:
            problems.append(f"{_at(where, name)}: required field is missing")
    return problems


@functools.cache
def _fields(model: type[msgspec.Struct]) -> dict[str, msgspec.structs.FieldInfo]:
    """A model's fields by their key in the file (msgspec evaluates the annotations on every call)."""
    return {field.encode_name: field for field in msgspec.structs.fields(model)}


def _value_problems(
    value: object, annotation: Any, where: str, check: Check | None, checks: Mapping[str, Check]
) -> list[str]:
    """The problems of one value: a nested model, mapping or list of models item by item, then the value as
    msgspec reads it (so a value with no problem here converts). ``check`` applies only when the type is right.
    """
    kind, inner = _shape(annotation)
    if kind is _Shape.MODEL and isinstance(value, Mapping):
        problems = problems_of(value, inner, where, checks)
    elif kind is _Shape.MAPPING and isinstance(value, Mapping):
        problems = [
            problem
            for key, item in value.items()
            for problem in (
                _value_problems(item, inner, f"{where}.{key}", None, checks)
                if isinstance(key, str)
                else [f"{where}.{key}: expected a string key, got {shown(key)}"]
            )
        ]
    elif kind is _Shape.MODELS and isinstance(value, list):
        problems = _item_problems(value, inner, where, checks)
    else:
        problems = []
    if problems:
        return problems
    try:
        msgspec.convert(value, annotation)
    except msgspec.ValidationError:
        items = _item_problems(value, inner, where, {}) if kind is _Shape.LIST and isinstance(value, list) else []
        return items or [f"{where}: expected {expected(annotation)}, got {_got(value)}"]
    return [f"{where}{suffix}: {problem}" for suffix, problem in (check(value) if check else ())]


def _item_problems(value: list[Any], item: Any, where: str, checks: Mapping[str, Check]) -> list[str]:
    """The problems of each item of a list, alone."""
    return [
        problem
        for index, entry in enumerate(value)
        for problem in _value_problems(entry, item, f"{where}[{index}]", None, checks)
    ]


class _Shape(enum.Enum):
    """How a value is looked into: a model key by key, a mapping or a list item by item, or whole (a leaf)."""

    MODEL = "model"
    MAPPING = "mapping"
    MODELS = "models"
    LIST = "list"
    LEAF = "leaf"


@functools.cache
def _shape(annotation: Any) -> tuple[_Shape, Any]:
    """The shape of ``annotation`` (without ``Annotated`` and ``| None``) and its model or item annotation."""
    shape = _unwrapped(annotation)
    origin, arguments = typing.get_origin(shape), typing.get_args(shape)
    if isinstance(shape, type) and issubclass(shape, msgspec.Struct):
        return _Shape.MODEL, shape
    if origin is dict:
        return _Shape.MAPPING, arguments[1]
    if origin in (tuple, list):
        return (_Shape.MODELS if _shape(arguments[0])[0] is _Shape.MODEL else _Shape.LIST), arguments[0]
    return _Shape.LEAF, None


def _unwrapped(annotation: Any) -> Any:
    """``annotation`` without its ``Annotated`` metadata and its ``| None``, when one type is left."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _unwrapped(typing.get_args(annotation)[0])
    others = [item for item in typing.get_args(annotation) if item is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, pytypes.UnionType) and len(others) == 1:
        return _unwrapped(others[0])
    return annotation


def expected(annotation: Any) -> str:
    """What a value of ``annotation`` is, in words: ``an integer >= 1``, ``one of merge, rebase``."""
    return _words(types.type_info(annotation))


def _words(kind: types.Type) -> str:
    if isinstance(kind, types.Metadata):
        return str((kind.extra or {}).get("expected") or _words(kind.type))
    if isinstance(kind, types.UnionType):
        return " or ".join(_words(item) for item in kind.types if not isinstance(item, types.NoneType))
    if isinstance(kind, (types.IntType, types.FloatType, types.StrType)):
        return _bounded_words(kind)
    if isinstance(kind, (types.EnumType, types.LiteralType)):
        values = [item.value for item in kind.cls] if isinstance(kind, types.EnumType) else kind.values
        return f"one of {', '.join(str(value) for value in values)}"
    if isinstance(kind, (types.ListType, types.VarTupleType)):
        return f"a {'non-empty ' if kind.min_length else ''}list of {_plural(_words(kind.item_type))}"
    return _KINDS.get(type(kind), "a value")


_KINDS = {types.BoolType: "true or false", types.StructType: "a mapping", types.DictType: "a mapping"}


def _bounded_words(kind: types.IntType | types.FloatType | types.StrType) -> str:
    if isinstance(kind, types.StrType):
        return "a non-empty string" if kind.min_length else "a string"
    noun = "an integer" if isinstance(kind, types.IntType) else "a number"
    if kind.ge is not None and kind.le is not None:
        return f"{noun} from {_number(kind.ge)} to {_number(kind.le)}"
    limits = ((">=", kind.ge), (">", kind.gt), ("<=", kind.le))
    bounds = " and ".join(f"{sign} {_number(bound)}" for sign, bound in limits if bound is not None)
    return f"{noun} {bounds}" if bounds else noun


def _number(bound: float) -> str:
    """A bound as people write it: ``31536000``, not ``3.1536e+07``; ``0.5`` stays."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _plural(words: str) -> str:
    """``a string`` -> ``strings``: the items of a list, when they are one plain kind."""
    article, _, noun = words.partition(" ")
    return f"{noun}s" if article in ("a", "an") and " " not in noun else f"items each {words}"


def _got(value: object) -> str:
    """The value itself when short and plain; its kind for a list or a mapping that is not empty."""
    return kind_of(value) if isinstance(value, (Mapping, list)) and value else shown(value)


def _at(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)
