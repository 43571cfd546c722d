"""Declared schemas for the files ``fnn`` writes and reads back, and bounded JSON reading.

Every file the application reads is untrusted input, its own run folders included. A schema here is a function
``check(value, where) -> value`` built from a few combinators (:func:`integer`, :func:`number`, :func:`string`,
:func:`choice`, :func:`boolean`, :func:`optional`, :func:`list_of`, :func:`record`); it returns the value in its
plain Python type or raises :class:`RunFileError`, one line naming the file and the field (``runs/x:
config.json: lr: expected a finite number >= 0, got 'abc'``).

:func:`read_json_file` refuses special files, bounds the size and the nesting depth before parsing and names the
file in every error. The schemas of the run files themselves are next to their readers in
:mod:`functional_nn.app.runs`. Imports only the standard library.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Check = Callable[[Any, str], Any]

MAX_JSON_BYTES = 16 << 20      # a run's JSON files are a few kB; a model's metadata under 1 MB
MAX_JSON_DEPTH = 32            # the deepest file written is 4 levels deep
MAX_TEXT_BYTES = 1 << 20       # TOML settings files


class RunFileError(ValueError):
    """A file that the application reads back is missing or malformed; the message is one line naming the file."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(where: str, expected: str, value: Any) -> RunFileError:
    """The error for a field: ``<where>: expected <expected>, got <value>`` (the value shortened)."""
    return RunFileError(f"{where}: expected {expected}, got {_show(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(low: int | None = None, high: int | None = None) -> Check:
    """An int (not a bool) in ``[low, high]``.

    >>> integer(1, 3)(2, "f")
    2
    >>> integer(1, 3)(7, "f")
    Traceback (most recent call last):
    ...
    functional_nn.app.schema.RunFileError: f: expected an integer in [1, 3], got 7
    """
    what = ("an integer" + (f" in [{low}, {high}]" if low is not None and high is not None
                            else f" >= {low}" if low is not None else f" <= {high}" if high is not None else ""))

    def check(value, where):
        if not _is_int(value) or (low is not None and value < low) or (high is not None and value > high):
            raise fail(where, what, value)
        return int(value)
    return check


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False) -> Check:
    """A finite int or float (not a bool) in ``[low, high]`` (``(low, high]`` with ``low_open``), as a float."""
    bounds = "" if low is None else (f" > {low:g}" if low_open else f" >= {low:g}")
    bounds += "" if high is None else f"{' and' if bounds else ''} <= {high:g}"
    what = f"a finite number{bounds}"

    def check(value, where):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            ok = ok and math.isfinite(value)
        except OverflowError:            # an int too large for a float
            ok = False
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            raise fail(where, what, value)
        return float(value)
    return check


def string(*, max_len: int = 4096) -> Check:
    """A str of at most ``max_len`` characters, without line breaks or NUL."""
    def check(value, where):
        if not isinstance(value, str) or len(value) > max_len or any(c in value for c in "\n\r\0"):
            raise fail(where, f"a one-line string of at most {max_len} characters", value)
        return value
    return check


def choice(options: Sequence[str]) -> Check:
    """One of ``options`` (strings)."""
    def check(value, where):
        if not isinstance(value, str) or value not in options:
            raise fail(where, f"one of {', '.join(options)}", value)
        return value
    return check


def boolean(value: Any, where: str) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise fail(where, "true or false", value)
    return value


def optional(check: Check) -> Check:
    """``None`` (JSON null) or what ``check`` accepts."""
    return lambda value, where: None if value is None else check(value, where)


def list_of(item: Check, *, min_len: int = 0, max_len: int = 1 << 20) -> Check:
    """A list of ``min_len`` to ``max_len`` items, each checked by ``item`` (``where[i]`` in errors)."""
    def check(value, where):
        if not isinstance(value, list) or not min_len <= len(value) <= max_len:
            size = f"{min_len}-{max_len}" if max_len < (1 << 20) else f"at least {min_len}"
            raise fail(where, f"a list of {size} items", value if not isinstance(value, list) else
                       f"a list of {len(value)}")
        return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return check


def record(required: Mapping[str, Check], optional_keys: Mapping[str, Check] | None = None, *,
           extra: bool = True) -> Check:
    """A JSON object with the ``required`` keys and any of ``optional_keys``, each checked by its function.

    Unknown keys are kept unchecked when ``extra`` (files of a newer version may add some), refused otherwise.
    Errors name the field as ``where: key``.
    """
    optional_keys = dict(optional_keys or {})

    def check(value, where):
        if not isinstance(value, dict):
            raise fail(where, "a JSON object", type(value).__name__ if not isinstance(value, (int, float, str))
                       else value)
        for key in required:
            if key not in value:
                raise RunFileError(f"{where}: {key}: missing")
        if not extra:
            unknown = [k for k in value if k not in required and k not in optional_keys]
            if unknown:
                raise RunFileError(f"{where}: {_show(unknown[0])}: unknown field")
        out = dict(value)
        for key, item in (*required.items(), *optional_keys.items()):
            if key in value:
                out[key] = item(value[key], f"{where}: {key}")
        return out
    return check


# ---------------------------------------------------------------------------------------------- reading files

def check_regular_file(path: str | os.PathLike, what: str) -> os.stat_result:
    """``os.stat`` of ``path``; RunFileError naming ``what`` unless it is a regular file (FIFOs, devices,
    sockets and folders are refused before anything opens them)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RunFileError(f"{what} is missing") from None
    except OSError as e:
        raise RunFileError(f"{what}: cannot read: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, device or socket)"
        raise RunFileError(f"{what} is {kind}")
    return st


def read_text_file(path: str | os.PathLike, what: str, *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A regular file of at most ``max_bytes`` as UTF-8 text (a BOM dropped); RunFileError naming ``what``."""
    st = check_regular_file(path, what)
    if st.st_size > max_bytes:
        raise RunFileError(f"{what}: {st.st_size} bytes, more than the {max_bytes} such a file may have")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise RunFileError(f"{what}: cannot read: {e.strerror or e}") from None
    if len(data) > max_bytes:                # it grew since the stat
        raise RunFileError(f"{what}: more than the {max_bytes} bytes such a file may have")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise RunFileError(f"{what}: not UTF-8 text (byte {e.start})") from None


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), computed without recursion.

    >>> json_depth({"a": [1, {"b": []}]}), json_depth(3)
    (4, 0)
    """
    depth, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        elif not isinstance(v, list):
            depth = max(depth, d)
            continue
        depth = max(depth, d + 1)
        stack.extend((item, d + 1) for item in v)
    return depth


def parse_json(text: str, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON text into a value; RunFileError naming ``what`` for bad JSON or nesting deeper than ``max_depth``
    (NaN and Infinity are read; the schemas say where a number must be finite)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunFileError(f"{what}: not valid JSON (line {e.lineno}: {e.msg})") from None
    except RecursionError:
        raise RunFileError(f"{what}: JSON nested too deeply (more than {max_depth} levels)") from None
    if json_depth(value) > max_depth:
        raise RunFileError(f"{what}: JSON nested too deeply (more than {max_depth} levels)")
    return value


def read_json_file(path: str | os.PathLike, what: str | None = None, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file, size- and depth-bounded (see :func:`parse_json`); ``what`` names it in errors (the path by
    default)."""
    what = what or str(Path(path))
    return parse_json(read_text_file(path, what, max_bytes=max_bytes), what)
