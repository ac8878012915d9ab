"""A dataclass's type hints as the schema of a JSON object.

Configurations arrive as JSON (a run's config.json, a model's config.json) and used to be
passed straight to a dataclass, so `"lr": "fast"` or `"num_labels": "3"` failed somewhere deep
inside training, after files had been written. `check_values` checks such an object against
the fields of the dataclass before anything happens, and names the file and key of the first
problem on one line:

    runs/a/config.json: key 'max_steps': expected an integer, got "3"

It understands the hints these configurations use: int, float, str, bool, `X | None`, Any,
Literal, dict[K, V], list[X] and tuple[...]. Only types are checked here; whether a value makes
sense (a positive size, a probability) stays with the dataclass's own validation.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from typing import Any, Mapping

from .errors import AlbertError


def check_values(cls: type, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Check `values` against the init fields of dataclass `cls` and return them converted to
    the declared types: an integer for a float field becomes a float (transformers writes `0`
    for a dropout of 0.0), an array for a tuple a tuple, and the keys of a dict[int, ...] field
    (always strings in JSON) integers.

    Raises `AlbertError("<source>: ...")` for the first unknown key, missing required key or
    value of the wrong type. A bool is not an integer or a number here, although Python says it
    is, and NaN/infinity are not numbers either: no option or model setting means them.
    """
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        close = difflib.get_close_matches(unknown[0], fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise AlbertError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}{hint}")
    missing = [name for name, f in fields.items() if name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise AlbertError(f"{source}: missing required key(s) {', '.join(map(repr, missing))}")
    hints = typing.get_type_hints(cls)
    return {name: convert(value, hints[name], source, name) for name, value in values.items()}


def convert(value: Any, hint: Any, source: str, key: str) -> Any:
    """`value` as the type `hint` declares. `key` is where it sits in the file `source`
    (`id2label["3"]`, `architectures[0]`), for the error message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        deeper = None  # an option whose outer shape fits says best what is wrong inside it
        for option in args:
            try:
                return convert(value, option, source, key)
            except _Mismatch as e:
                if e.key != key and deeper is None:
                    deeper = e
            except AlbertError as e:
                deeper = deeper or e
        raise deeper or _expected(source, key, hint, value)
    if hint is type(None) or hint in _SCALARS or origin is typing.Literal:
        if origin is typing.Literal:
            fits = any(value == a and type(value) is type(a) for a in args)
        else:
            fits = _SCALARS.get(hint, lambda v: v is None)(value)
        if not fits:
            raise _expected(source, key, hint, value)
        return float(value) if hint is float else value
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise _expected(source, key, hint, value)
        key_hint, value_hint = args or (Any, Any)
        return {_dict_key(k, key_hint, source, key): convert(v, value_hint, source, f"{key}[{json.dumps(str(k))}]")
                for k, v in value.items()}
    if hint in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _expected(source, key, hint, value)
        if origin is tuple and args and args[-1] is not Ellipsis:  # a fixed-length tuple
            if len(value) != len(args):
                raise AlbertError(f"{source}: key {key!r}: expected an array of {len(args)} items, got {len(value)}")
            item_hints = list(args)
        else:
            item_hints = [args[0] if args else Any] * len(value)
        items = [convert(v, h, source, f"{key}[{i}]") for i, (v, h) in enumerate(zip(value, item_hints))]
        return tuple(items) if (hint is tuple or origin is tuple) else items
    raise TypeError(f"check_values cannot check the type hint {hint!r}")  # a programming error, not the user's


def is_number(v: Any) -> bool:
    """A finite int or float. bool is a subclass of int in Python, but `true` is not a number."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_SCALARS = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: is_number,
    str: lambda v: isinstance(v, str),
}


def _dict_key(k: Any, hint: Any, source: str, key: str) -> Any:
    """A dict key as `hint`: JSON object keys are strings, so an integer key is spelled "3"."""
    if hint is int and isinstance(k, str):
        if re.fullmatch(r"-?[0-9]+", k):
            return int(k)
        raise AlbertError(f"{source}: key {key!r}: expected integer keys, got {json.dumps(k)}")
    return convert(k, hint, source, f"{key} key {_shown(k)}")


def describe(hint: Any) -> str:
    """The type `hint` in the words of a JSON file: "an integer or null"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if hint is dict or origin is dict:
        return "an object"
    if hint in (list, tuple) or origin in (list, tuple):
        return "an array"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string",
            type(None): "null"}.get(hint, str(hint))


class _Mismatch(AlbertError):
    """A value of the wrong type at `key` (a union tries its next option on one at its own level)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _expected(source: str, key: str, hint: Any, value: Any) -> _Mismatch:
    return _Mismatch(key, f"{source}: key {key!r}: expected {describe(hint)}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """`value` as it would look in the JSON file (so "3", the string, differs from 3), shortened."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
