"""JSON data files checked with errors that name the file and line: shape problems are raised
as `Malformed(json path, problem)` by a parser and reported at the line where that path starts."""
from __future__ import annotations

import json
import json.decoder
import json.scanner
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..errors import AlbertError, located

T = TypeVar("T")


class Malformed(Exception):
    """A shape problem at a JSON path; turned into an AlbertError with the line of that path."""

    def __init__(self, where: tuple, problem: str):
        super().__init__(problem)
        self.where, self.problem = where, problem


def expect(cond: bool, where: tuple, problem: str) -> None:
    if not cond:
        raise Malformed(where, problem)


class _PositionDecoder(json.JSONDecoder):
    """A (slow, pure-Python) decoder that remembers where every object and list starts."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: dict[int, int] = {}

        def parse_object(s_and_end, *args, **kwargs):
            obj, end = json.decoder.JSONObject(s_and_end, *args, **kwargs)
            self.starts[id(obj)] = s_and_end[1] - 1
            return obj, end

        def parse_array(s_and_end, *args, **kwargs):
            arr, end = json.decoder.JSONArray(s_and_end, *args, **kwargs)
            self.starts[id(arr)] = s_and_end[1] - 1
            return arr, end

        self.parse_object, self.parse_array = parse_object, parse_array
        self.scan_once = json.scanner.py_make_scanner(self)


def line_of(text: str, where: tuple) -> int:
    """The 1-based line where the object at JSON path `where` starts (only run on the error path)."""
    decoder = _PositionDecoder()
    node = decoder.decode(text)
    offset = decoder.starts.get(id(node), 0)
    for key in where:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
        offset = decoder.starts.get(id(node), offset)
    return text.count("\n", 0, offset) + 1


def read_checked_json(path: str | os.PathLike, parse: Callable[[Any], T]) -> T:
    """`parse` of the JSON document in `path`; bad UTF-8, bad JSON and a `Malformed` from
    `parse` become one-line AlbertErrors naming the file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise AlbertError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise located(path, raw.count(b"\n", 0, e.start) + 1, f"not valid UTF-8 (byte 0x{raw[e.start]:02x})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise located(path, e.lineno, f"not valid JSON: {e.msg} (column {e.colno})") from None
    try:
        return parse(doc)
    except Malformed as e:
        path_text = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in e.where) or "top level"
        raise located(path, line_of(text, e.where), f"{e.problem} (at {path_text.lstrip('.')})") from None
