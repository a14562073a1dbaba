"""RFC 8785 JSON canonicalization and strict parsing.

The ``rfc8785/testdata`` vectors (cyberphone/json-canonicalization) are read in place
from ``tests/vectors``; number cases are the IEEE-754 samples of RFC 8785
Appendix B.
"""

from __future__ import annotations

import json
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger._canonical import MAX_SAFE_INTEGER, canonicalize, loads_strict
from ledger._errors import InputError
from tests._vectors import vectors_dir

JCS_DIR = "rfc8785/testdata"


def _jcs_names() -> list[str]:
    return sorted(p.name for p in (vectors_dir() / JCS_DIR / "input").glob("*.json"))


JCS_NAMES = _jcs_names()


def test_jcs_vector_count() -> None:
    assert len(JCS_NAMES) == 6


@pytest.mark.parametrize("name", JCS_NAMES, ids=JCS_NAMES)
def test_jcs_vectors(vectors: Path, name: str) -> None:
    base = vectors / JCS_DIR
    raw = (base / "input" / name).read_bytes()
    want = (base / "output" / name).read_bytes()
    hex_text = (base / "outhex" / name).with_suffix(".txt").read_text("ascii")
    assert bytes.fromhex(hex_text) == want
    got = canonicalize(loads_strict(raw, where=name))
    assert got == want
    # canonical form is a fixed point
    assert canonicalize(loads_strict(got)) == want


# RFC 8785 Appendix B: IEEE-754 bit patterns and their ECMAScript serialization.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "want"), APPENDIX_B, ids=[b for b, _ in APPENDIX_B])
def test_number_serialization(bits: str, want: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert canonicalize(value) == want.encode("ascii")


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (1e30, "1e+30"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (56.0, "56"),
        (4.5, "4.5"),
        (0.002, "0.002"),
        (-1.5e-9, "-1.5e-9"),
        (123.456e5, "12345600"),
        (0.1, "0.1"),
    ],
)
def test_number_forms(value: float, want: str) -> None:
    assert canonicalize(value) == want.encode("ascii")


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_non_finite_numbers_refused(bits: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    with pytest.raises(InputError, match="expected a finite number"):
        canonicalize({"a": [value]})


def test_integers() -> None:
    assert canonicalize(0) == b"0"
    assert canonicalize(-7) == b"-7"
    assert canonicalize(MAX_SAFE_INTEGER) == b"9007199254740991"
    assert canonicalize(-MAX_SAFE_INTEGER) == b"-9007199254740991"
    for bad in (MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 10**30):
        with pytest.raises(InputError, match=rf"within ±{MAX_SAFE_INTEGER}.*got {bad}$"):
            canonicalize(bad)
    with pytest.raises(InputError, match=r"at \$\.amount\[1\]"):
        canonicalize({"amount": [1, 2**60]})
    # parsed big integers stay ints, and the canonicalizer refuses them
    with pytest.raises(InputError, match="I-JSON"):
        canonicalize(loads_strict('{"n": 9007199254740993}'))


def test_bools_are_not_integers() -> None:
    assert canonicalize([True, False, None, 1, 0]) == b"[true,false,null,1,0]"
    assert canonicalize({"a": True}) == b'{"a":true}'


def test_refused_types() -> None:
    with pytest.raises(InputError, match=r"at \$\.amount: expected a string.*Decimal\('1\.50'\)"):
        canonicalize({"amount": Decimal("1.50")})
    with pytest.raises(InputError, match="got set"):
        canonicalize({"s": {1, 2}})
    with pytest.raises(InputError, match="got bytes"):
        canonicalize(b"x")
    with pytest.raises(InputError, match="member names to be strings, got 1"):
        canonicalize({1: "a"})
    with pytest.raises(InputError, match=r'at \$\["a b"\]\[0\]\.c'):
        canonicalize({"a b": [{"c": object()}]})


def test_subclasses_serialize_as_their_base() -> None:
    import enum

    class Colour(enum.StrEnum):
        RED = "red"

    class Num(enum.IntEnum):
        ONE = 1

    assert canonicalize({"c": Colour.RED, "n": Num.ONE}) == b'{"c":"red","n":1}'
    assert canonicalize((1, "a", [])) == b'[1,"a",[]]'


def test_string_escaping() -> None:
    controls = "".join(chr(i) for i in range(0x20))
    want = (
        '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r'
        "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
        '\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"'
    )
    assert canonicalize(controls) == want.encode("ascii")
    assert canonicalize('"\\/') == b'"\\"\\\\/"'
    raw = "\x7f\u2028\u2029é€😂</script>"
    assert canonicalize(raw) == b'"' + raw.encode("utf-8") + b'"'


def test_lone_surrogates_refused() -> None:
    with pytest.raises(InputError, match="lone surrogate U\\+D800"):
        canonicalize({"a": "x\ud800"})
    with pytest.raises(InputError, match="lone surrogate"):
        canonicalize({"\udc00": 1})
    with pytest.raises(InputError, match="lone surrogate"):
        loads_strict('{"a": ["\\ud800"]}')
    with pytest.raises(InputError, match="lone surrogate"):
        loads_strict('{"\\uDE02": 1}')
    # a correctly paired escape is fine
    assert loads_strict('"\\ud83d\\ude02"') == "😂"


def test_key_order_is_utf16() -> None:
    # U+1F600 is D83D DE00 in UTF-16: below U+E000, although its code point is above.
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3, "\uffff": 4}
    assert canonicalize(value) == '{"a":3,"😀":2,"\ue000":1,"\uffff":4}'.encode()
    # without astral characters, code point order is UTF-16 order
    assert canonicalize({"b": 1, "é": 2, "a": 3, "€": 4}) == '{"a":3,"b":1,"é":2,"€":4}'.encode()
    assert canonicalize({}) == b"{}"
    assert canonicalize([]) == b"[]"


def test_duplicate_keys_refused() -> None:
    with pytest.raises(InputError, match=r"^duplicate key 'a'$"):
        loads_strict('{"a": 1, "b": 2, "a": 3}')
    with pytest.raises(InputError, match=r"^batch\.jsonl:3: duplicate key 'x'$"):
        loads_strict('[{"y": {"x": 1, "x": 1}}]', where="batch.jsonl:3")
    # the same name at different levels is fine
    assert loads_strict('{"a": {"a": 1}}') == {"a": {"a": 1}}


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e400", "[-1E999]"])
def test_non_finite_input_refused(text: str) -> None:
    with pytest.raises(InputError, match=r"^f: expected a finite JSON number, got "):
        loads_strict(text, where="f")


def test_invalid_input_refused() -> None:
    with pytest.raises(
        InputError, match=r"^in\.json: expected UTF-8 JSON text, got invalid byte 0xff"
    ):
        loads_strict(b'{"a": "\xff"}', where="in.json")
    with pytest.raises(InputError, match="invalid byte 0xed"):
        loads_strict(b'"\xed\xa0\x80"')  # CESU-style encoded surrogate
    with pytest.raises(InputError, match=r"^invalid JSON: .* line 1 column"):
        loads_strict('{"a": 1,}')
    with pytest.raises(InputError, match="invalid JSON"):
        loads_strict('{"a": 1} x')
    with pytest.raises(InputError, match="invalid JSON"):
        loads_strict('"tab\there"')  # raw control character in a string
    with pytest.raises(InputError, match="invalid JSON"):
        loads_strict("\ufeff{}")
    # too long for Python to convert: kept out of range, for the model to refuse on its field
    assert loads_strict("9" * 5000) == 2**53 and loads_strict("-" + "9" * 5000) == -(2**53)
    with pytest.raises(InputError, match="nested too deeply"):
        loads_strict("[" * 100_000 + "]" * 100_000)


def test_loads_strict_keeps_numbers() -> None:
    value = loads_strict(b'{"i": 12, "f": 1.5, "e": 1E2, "big": 123456789012345678901234}')
    assert value == {"i": 12, "f": 1.5, "e": 100.0, "big": 123456789012345678901234}
    assert type(value["i"]) is int
    assert type(value["e"]) is float
    assert type(value["big"]) is int


# ----------------------------------------------------------------- property tests


def _reparses_as_float_or_safe_int(value: float) -> bool:
    """Whether ``value`` survives ``json.loads(canonicalize(value)) == value``.

    ECMAScript writes integral doubles below 1e21 without a fraction or exponent, so they
    parse back as ``int``; from 2**53 on that int is outside I-JSON's range.
    """
    return not 2**53 <= abs(value) < 1e21


_text = st.text(st.characters(codec="utf-8"), max_size=12)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False).filter(_reparses_as_float_or_safe_int)
    | _text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_round_trip(value: Any) -> None:
    out = canonicalize(value)
    assert json.loads(out) == value
    assert loads_strict(out) == value
    assert canonicalize(loads_strict(out)) == out


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip_exactly(value: float) -> None:
    out = canonicalize(value)
    assert float(out) == value
    if value == 0.0:
        assert out == b"0"  # also for -0.0
    text = out.decode("ascii")
    assert "E" not in text
    assert not text.endswith(".0")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_text, st.integers(0, 9), max_size=8))
def test_key_order_property(value: dict[str, int]) -> None:
    parsed = json.loads(canonicalize(value), object_pairs_hook=lambda pairs: pairs)
    keys = [k for k, _ in parsed]
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be"))


_plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",))),
        inner, max_size=4),
    max_leaves=20,
)


@given(_plain_values)
def test_plain_fast_path_equals_jcs(value: object) -> None:
    from ledger._canonical import canonicalize_plain

    assert canonicalize_plain(value) == canonicalize(value)


def test_plain_fast_path_fallbacks() -> None:
    """What orjson refuses goes to the standard library: written, or refused with a reason."""
    import datetime as dt

    from ledger._canonical import canonicalize_plain

    assert canonicalize_plain({"n": 2**70, "a": [1]}) == b'{"a":[1],"n":1180591620717411303424}'
    with pytest.raises(InputError, match="cannot canonicalize"):
        canonicalize_plain({"a": "\ud800"})
    with pytest.raises(InputError, match="cannot canonicalize"):
        canonicalize_plain({"a": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)})  # never as a string


_ws = st.sampled_from(["", " ", "\t", "\n ", "\r\n"])
_key_text = st.text(alphabet=st.sampled_from('ab:"\\é😀\x01 '), max_size=3)
_scalar_text = st.one_of(
    st.just("null"), st.just("true"), st.just("false"),
    st.integers(-(2**70), 2**70).map(str),
    st.integers(2**64, 2**70).map(str),  # beyond orjson's integers
    st.floats(allow_nan=False, allow_infinity=False).map(repr).filter(
        lambda t: "inf" not in t and "e" not in t),
    st.sampled_from(["1e400", "-0", "1E2", "0.5e-3"]),
    _key_text.map(lambda k: json.dumps(k, ensure_ascii=False)),
)


def _obj_text(draw: Any, depth: int) -> str:
    if depth > 2 or draw(st.booleans()):
        return str(draw(_scalar_text))
    w = draw(_ws)
    if draw(st.booleans()):
        items = draw(st.lists(st.integers(0, 2), max_size=3))
        return "[" + ",".join(w + _obj_text(draw, depth + 1) for _ in items) + "]"
    keys = draw(st.lists(_key_text, max_size=4))  # may repeat: duplicate member names
    members = [json.dumps(k, ensure_ascii=draw(st.booleans())) + w + ":" + w
               + _obj_text(draw, depth + 1) for k in keys]
    return "{" + w + ("," + w).join(members) + "}"


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_fast_parse_takes_only_what_the_strict_parser_gives(data: Any) -> None:
    """orjson's result is used only where it equals the standard library's, value and
    types alike; whatever the strict parser refuses (duplicates above all) is never
    taken from the fast path."""
    from ledger._canonical import _DECODER, _loads_fast

    text = _obj_text(data.draw, 0)
    fast = _loads_fast(text)
    try:
        strict = loads_strict(text)
    except InputError:
        assert fast is None, text
        return
    if fast is not None:
        assert fast == strict and repr(fast) == repr(strict), text
    assert _DECODER.decode(text) == strict


def test_fast_parse_is_taken_for_plain_records() -> None:
    from ledger._canonical import _loads_fast

    line = ('{"type": "business.enrollment", "id": "EN-1", '
            '"occurred_at": "2020-01-01T09:34:00+08:00"}')
    assert _loads_fast(line) == json.loads(line)
    assert _loads_fast('{"a": {"b": [1, {"c": "d:e"}]}, "f": null}') is not None
    assert _loads_fast('{"a": 1, "b": {"c": 1, "c": 2}}') is None
    big = '{"n": [123456789012345678901234]}'  # orjson would read a float
    assert _loads_fast(big) is None and type(loads_strict(big)["n"][0]) is int
