"""Canonical JSON bytes (RFC 8785, JCS) and strict JSON parsing for everything the ledger hashes.

This module owns the one byte form a JSON value is hashed and signed in, the JSON
Canonicalization Scheme of RFC 8785:

- §3.2.2.2 strings: only ``\\"``, ``\\\\``, ``\\b``, ``\\f``, ``\\n``, ``\\r``, ``\\t`` and
  ``\\u00xx`` (lowercase hex) for the other control characters; everything else is raw
  UTF-8; lone surrogates are refused;
- §3.2.2.3 numbers: the ECMAScript Number-to-String form of an IEEE-754 double
  (shortest round-trip digits, ``1e+30``, ``1e-7``, integers below 1e21 in full,
  ``-0`` as ``0``); NaN and infinities are refused. Integers must lie within
  ``±(2**53 - 1)`` (I-JSON, RFC 7493 §2.2) so every reader sees the same number;
- §3.2.3 object members sorted by the UTF-16 code units of their names;
- no whitespace; UTF-8 output (§3.2.4).

It also owns :func:`loads_strict`, the parser for JSON the ledger accepts: duplicate
member names, ``NaN``/``Infinity`` and invalid UTF-8 are refused (RFC 8785 §3.1 relies
on I-JSON input).

Note: like ECMAScript, an integral double below 1e21 is written without a fraction
(``56.0`` -> ``56``), so it reads back as an ``int``; from 2**53 on such an ``int`` is
outside the I-JSON range and :func:`canonicalize` refuses it. Money never travels as a
float here: callers turn amounts into strings first.

Every refusal is an :class:`~ledger._errors.InputError` with a one-line message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

import orjson

from ledger._errors import InputError

__all__ = ["MAX_SAFE_INTEGER", "canonicalize", "loads_strict"]

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer every IEEE-754 double reader represents exactly (I-JSON)."""

_MIN_SAFE_INTEGER = -MAX_SAFE_INTEGER


class _Refusal(Exception):
    """Internal: a value cannot be canonicalized; ``path`` is built while unwinding."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = []


def _format_path(path: list[str | int]) -> str:
    out = ["$"]
    for part in reversed(path):
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part.isidentifier():
            out.append(f".{part}")
        else:
            out.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(out)


# ----------------------------------------------------------------------------- numbers


def _number(value: float) -> str:
    """ECMAScript ``Number.prototype.toString`` of a finite double (RFC 8785 §3.2.2.3)."""
    if value != value or value in (math.inf, -math.inf):
        raise _Refusal(f"expected a finite number, got {value!r}")
    if value == 0.0:
        return "0"  # also -0.0
    sign = ""
    if value < 0:
        sign = "-"
        value = -value
    # repr() yields the shortest digits that round-trip (the same choice ECMAScript makes);
    # re-lay them out by the ECMAScript rules.
    text = repr(value)
    mantissa, _, exp_text = text.partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    point = len(int_part) + (int(exp_text) if exp_text else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    n = point  # value = 0.digits * 10**n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp = f"e+{e}" if e >= 0 else f"e-{-e}"
    if k == 1:
        return sign + digits + exp
    return sign + digits[0] + "." + digits[1:] + exp


def _integer(value: int) -> str:
    if value > MAX_SAFE_INTEGER or value < _MIN_SAFE_INTEGER:
        raise _Refusal(f"expected an integer within ±{MAX_SAFE_INTEGER} (I-JSON), got {int(value)}")
    return int.__repr__(value)


# ------------------------------------------------------------------------------ values


def _key_order(keys: list[str]) -> list[str]:
    """Member names in UTF-16 code-unit order (RFC 8785 §3.2.3).

    Python orders strings by code point, which equals UTF-16 order unless a name holds a
    character above U+FFFF (its UTF-16 surrogates sort below U+E000..U+FFFF).
    """
    for key in keys:
        if not key.isascii() and max(key) > "\uffff":
            return sorted(keys, key=_utf16)
    keys.sort()
    return keys


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _emit(value: object, out: Callable[[str], None]) -> None:
    # Exact-type dispatch for the common types; mypy does not narrow through ``t``, and
    # the ignores below spare cast() calls on the ingest hot path.
    t = type(value)
    if t is str:
        out(encode_basestring(value))  # type: ignore[arg-type]
    elif t is dict:
        members: dict[Any, object] = value  # type: ignore[assignment]
        _emit_object(members, out)
    elif t is int:
        out(_integer(value))  # type: ignore[arg-type]
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif t is list or t is tuple:
        _emit_array(value, out)  # type: ignore[arg-type]
    elif t is float:
        out(_number(value))  # type: ignore[arg-type]
    else:
        _emit_other(value, out)


def _emit_object(members: dict[Any, object], out: Callable[[str], None]) -> None:
    keys = list(members)
    for key in keys:
        if not isinstance(key, str):
            raise _Refusal(f"expected object member names to be strings, got {key!r}")
    if not keys:
        out("{}")
        return
    sep = "{"
    for key in _key_order(keys):
        out(sep)
        out(encode_basestring(key))
        out(":")
        try:
            _emit(members[key], out)
        except _Refusal as exc:
            exc.path.append(str(key))
            raise
        sep = ","
    out("}")


def _emit_array(items: list[object] | tuple[object, ...], out: Callable[[str], None]) -> None:
    if not items:
        out("[]")
        return
    sep = "["
    for i, item in enumerate(items):
        out(sep)
        try:
            _emit(item, out)
        except _Refusal as exc:
            exc.path.append(i)
            raise
        sep = ","
    out("]")


def _emit_other(value: object, out: Callable[[str], None]) -> None:
    """Subclasses of the JSON types, and the refusals."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        out("true" if value else "false")
    elif isinstance(value, Decimal):
        raise _Refusal(f"expected a string for a decimal amount, got Decimal('{value}')")
    elif isinstance(value, str):
        out(encode_basestring(str.__str__(value)))
    elif isinstance(value, int):
        out(_integer(value))
    elif isinstance(value, float):
        out(_number(float(value)))
    elif isinstance(value, dict):
        _emit_object(value, out)
    elif isinstance(value, list | tuple):
        _emit_array(value, out)
    else:
        raise _Refusal(
            f"expected a JSON value (dict, list, str, int, float, bool, None), "
            f"got {type(value).__name__}"
        )


def canonicalize(value: object) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value``.

    Accepts dict (string keys), list, tuple, str, int, float, bool and None. Raises
    :class:`InputError` for anything else (including :class:`~decimal.Decimal`), an
    integer outside ``±(2**53 - 1)``, NaN or an infinity, a non-string member name and a
    lone surrogate.
    """
    parts: list[str] = []
    try:
        _emit(value, parts.append)
    except _Refusal as exc:
        where = _format_path(exc.path)
        raise InputError(f"cannot canonicalize JSON at {where}: {exc.reason}") from None
    except RecursionError:
        raise InputError("cannot canonicalize JSON: nested too deeply") from None
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise InputError(
            f"cannot canonicalize JSON: expected valid Unicode text, "
            f"got a lone surrogate U+{code:04X}"
        ) from None


_plain_encoder = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode
_ORJSON_PLAIN = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def canonicalize_plain(value: object) -> bytes:
    """RFC 8785 bytes of a value with **no floats** and only BMP member names, fast.

    For such values a JSON encoder with sorted keys and no whitespace writes exactly
    the JCS form (RFC 8785 §3.2.2.2 string escapes are the same; code point order
    equals UTF-16 order for BMP names, §3.2.3). Ledger records meet that
    precondition by construction (models forbid floats and extra members);
    ``decode_leaf`` re-checks every leaf with :func:`canonicalize` when verifying.

    orjson (compiled) writes it; what orjson refuses (an integer beyond 64 bits, a
    lone surrogate, a type it does not pass through) goes to the standard library's
    encoder, which writes it or says why not. A test compares this function with
    :func:`canonicalize` on random float-free values.
    """
    try:
        return orjson.dumps(value, option=_ORJSON_PLAIN)
    except orjson.JSONEncodeError:
        pass
    try:
        return _plain_encoder(value).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise InputError(f"cannot canonicalize JSON: {exc}") from None


# ----------------------------------------------------------------------------- parsing


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _Constant(ValueError):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return obj


def _constant(token: str) -> Any:
    raise _Constant(token)


def _float(token: str) -> float:
    value = float(token)
    if value in (math.inf, -math.inf):
        raise _Constant(token)
    return value


def _int(token: str) -> int:
    """An integer literal; one too long to convert (more than 4,300 digits) becomes ±2^53.

    Either way it lies beyond I-JSON's ±(2^53 − 1) (FORMAT.md §1), so the record's model
    refuses it on its field, instead of the parser refusing the whole line."""
    try:
        return int(token)
    except ValueError:
        return -_TOO_BIG if token[0] == "-" else _TOO_BIG


_TOO_BIG = 2**53

_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs,
    parse_constant=_constant,
    parse_float=_float,
    parse_int=_int,
    strict=True,
)

# A \uD800-\uDFFF escape: the only way JSON text can carry a surrogate code point.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _members(value: Any) -> int:
    """Members of all objects in a parsed value; -1 when it holds a float."""
    t = type(value)
    if t is float:
        return -1
    if t is dict:
        n = len(value)
        items = value.values()
    elif t is list:
        n = 0
        items = value
    else:
        return 0
    for v in items:
        tv = type(v)
        if tv is dict or tv is list:
            m = _members(v)
            if m < 0:
                return -1
            n += m
        elif tv is float:
            return -1
    return n


def _loads_fast(text: str) -> Any:
    """orjson's parse of ``text`` where it provably equals :data:`_DECODER`'s, else None.

    orjson (compiled) parses RFC 8259 JSON as strictly as the standard library, but
    keeps the last of duplicate member names and turns integers beyond 64 bits into
    floats. So its result is taken only when the text has no backslash and the value
    no float, and the members add up: without escapes every ``"`` delimits a string,
    so the colons outside strings are exactly the member separators written, one per
    member; a duplicate name leaves the parsed objects with fewer members than that.
    Everything else goes to the standard library's parser, which also words the
    refusal.
    """
    if "\\" in text:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    members = _members(value)
    if members < 0 or "".join(text.split('"')[::2]).count(":") != members:
        return None
    return value


def loads_strict(text: str | bytes, *, where: str = "") -> Any:
    """Parse JSON text, refusing what RFC 8785 / I-JSON inputs may not contain.

    Refused with :class:`InputError`: invalid UTF-8 (for bytes), a byte-order mark,
    syntax errors, duplicate member names, ``NaN``/``Infinity``/``-Infinity``, numbers
    that overflow a double, and escaped lone surrogates. Numbers stay Python ``int`` and
    ``float`` (an integer literal of more than 4,300 digits, which Python will not
    convert, becomes ±2^53: out of range like the literal); callers check types.
    ``where`` (e.g. ``"entries.jsonl:12"``) prefixes the message.
    """
    prefix = f"{where}: " if where else ""
    if isinstance(text, bytes | bytearray | memoryview):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{prefix}expected UTF-8 JSON text, got invalid byte 0x{exc.object[exc.start]:02x}"
                f" at offset {exc.start}"
            ) from None
    if text.startswith("\ufeff"):
        raise InputError(f"{prefix}invalid JSON: starts with a byte-order mark (U+FEFF); "
                         "send UTF-8 without it")
    value = _loads_fast(text)
    if value is not None:
        return value
    try:
        value = _DECODER.decode(text)
    except _Duplicate as exc:
        raise InputError(f"{prefix}duplicate key {exc.key!r}") from None
    except _Constant as exc:
        raise InputError(f"{prefix}expected a finite JSON number, got {exc.token}") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{prefix}invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InputError(f"{prefix}invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than int_max_str_digits
        raise InputError(f"{prefix}invalid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise InputError(f"{prefix}expected valid Unicode text, got an escaped lone surrogate")
    return value
