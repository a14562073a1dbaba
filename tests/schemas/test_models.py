"""Interchange models: one valid example per kind, one malformed input per rule, properties."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import (
    PARTY_FIELDS,
    PERSONAL_FIELDS,
    RECORD_TYPES,
    BusinessBenefitPayment,
    FinancePayment,
    domain_of,
    kind_of,
    parse_record,
    parse_record_json,
    record_payload,
    to_date,
    to_datetime,
)
from schemas._types import MONEY_PATTERN, RECORD_ID_PATTERN
from tests._examples import DELETE, FULL, KINDS, example, minimal


def canonical(obj: object) -> str:
    """Compare JSON values by their text, so that ``1 == True == 1.0`` cannot hide a change."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


# --- valid input ------------------------------------------------------------------------


def test_every_kind_of_the_contract_has_a_model_and_an_example() -> None:
    assert set(RECORD_TYPES) == set(FULL)
    assert len(RECORD_TYPES) == 23  # v1 (19), statement, v1.1 archive kinds (2), certification


@pytest.mark.parametrize("type_", KINDS)
@pytest.mark.parametrize("shape", [FULL.__getitem__, minimal], ids=["full", "minimal"])
def test_valid_example_parses_and_renders_back_exactly(type_: str, shape: Any) -> None:
    data = shape(type_)
    record = parse_record(data)
    assert type(record) is RECORD_TYPES[type_]
    assert (record.domain, record.kind) == tuple(type_.split("."))
    assert canonical(record_payload(record)) == canonical(data)
    assert parse_record_json(json.dumps(data)) == record


def test_money_is_a_decimal_and_renders_as_the_given_string() -> None:
    record = parse_record(example("business.benefit_payment", amount="0.10"))
    assert isinstance(record, BusinessBenefitPayment)
    assert record.amount == Decimal("0.10")
    assert record_payload(record)["amount"] == "0.10"
    assert record.model_dump()["amount"] == Decimal("0.10")


def test_allocations_that_do_not_add_up_are_accepted() -> None:
    allocations = [{"event": "E-1", "amount": "1.00"}, {"event": "E-1", "amount": "999.99"}]
    record = parse_record(example("finance.payment", amount="5.00", allocations=allocations))
    assert isinstance(record, FinancePayment)
    assert record.allocations is not None
    assert sum(a.amount for a in record.allocations) != record.amount


def test_records_are_frozen_and_hashable() -> None:
    record = parse_record(FULL["finance.payment"])
    assert isinstance(record, FinancePayment)
    with pytest.raises(ValidationError, match="frozen"):
        record.amount = Decimal("1.00")  # type: ignore[misc]
    assert hash(record) == hash(parse_record(FULL["finance.payment"]))


def test_timestamps_keep_their_text_and_convert_to_aware_datetimes() -> None:
    text = "2026-03-05t10:00:00.123456789z"
    record = parse_record(example("business.enrollment", occurred_at=text))
    assert record.occurred_at == text
    assert to_datetime(text) == datetime(2026, 3, 5, 10, 0, 0, 123456, tzinfo=UTC)
    offset = to_datetime("2026-03-05T10:00:00+08:00").utcoffset()
    assert offset == timedelta(hours=8)
    with pytest.raises(ValueError, match="offset"):
        to_datetime("2026-03-05T10:00:00")


def test_dates_convert() -> None:
    assert to_date("2024-02-29") == date(2024, 2, 29)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        to_date("20240229")


def test_domain_and_kind_of_a_type() -> None:
    assert domain_of("business.benefit_payment") == "business"
    assert kind_of("business.benefit_payment") == "benefit_payment"
    assert domain_of("archive.bank_slip") == "archive"
    with pytest.raises(ValueError, match=re.escape("unknown record type 'business.nothing'")):
        domain_of("business.nothing")
    with pytest.raises(ValueError, match=re.escape("unknown record type 'payment'")):
        kind_of("payment")


def test_record_types_is_read_only() -> None:
    with pytest.raises(TypeError):
        RECORD_TYPES["x.y"] = FinancePayment  # type: ignore[index]


def test_personal_fields_are_marked_personal_in_every_model() -> None:
    seen: set[str] = set()
    for type_, model in RECORD_TYPES.items():
        properties = model.model_json_schema()["properties"]
        marked = {name for name, prop in properties.items() if prop.get("x-personal")}
        assert marked == set(properties) & PERSONAL_FIELDS, type_
        seen |= set(properties)
    assert seen >= PERSONAL_FIELDS | PARTY_FIELDS
    for type_ in ("business.enrollment", "business.benefit_approval", "business.benefit_payment"):
        assert "name" in RECORD_TYPES[type_].model_fields


# --- one malformed input per rule ---------------------------------------------------------


def _esc(text: str) -> str:
    return re.escape(text)


TEXT_ERROR = _esc("without control characters or leading/trailing whitespace")
ID_ERROR = _esc("must be a record id")
REGION_ERROR = _esc('must be a 6-digit region code string, like "440100"')
MONEY_CASES: list[tuple[object, str]] = [
    (3456.78, _esc('money must be a string like "3456.78", not a number')),
    (3456, _esc('money must be a string like "3456.78", not a number')),
    ("3456.7", "exactly two fraction digits"),
    ("3456.789", "exactly two fraction digits"),
    ("3456", "exactly two fraction digits"),
    ("03456.78", "without leading zeros"),
    ("+3456.78", "without leading zeros or '\\+'"),
    ("1,234.56", "exactly two fraction digits"),
    ("1234567890123456.00", "at most 15 integer digits"),
    ("-3456.78", _esc("amount must be greater than 0.00")),
    ("0.00", _esc("amount must be greater than 0.00")),
]
DATE_CASES: list[tuple[object, str]] = [
    ("2026-02-30", "not a real calendar date: day is out of range for month"),
    ("2026/03/01", _esc('date must be "YYYY-MM-DD"')),
    ("2026-3-1", _esc('date must be "YYYY-MM-DD"')),
]
PERIOD_CASES: list[tuple[object, str]] = [
    ("2026-13", "month from 01 to 12"),
    ("2026-00", "month from 01 to 12"),
    ("2026-3", "month from 01 to 12"),
    ("2026-03-01", "month from 01 to 12"),
]
TEXT_CASES: list[tuple[object, str]] = [
    ("", TEXT_ERROR),
    (" 440102", TEXT_ERROR),
    ("440102 ", TEXT_ERROR),
    ("44\n0102", TEXT_ERROR),
    ("\u3000张三", TEXT_ERROR),
    ("x" * 129, TEXT_ERROR),
    (440102, TEXT_ERROR),
]
INSURANCE_CASES: list[tuple[object, str]] = [
    ("all", "Input should be 'pension', 'medical', 'unemployment'"),
    ("Pension", "Input should be 'pension'"),
]
FUND_ACCOUNT_CASES: list[tuple[object, str]] = [
    ("cash", "Input should be 'income', 'expenditure' or 'fiscal_special'"),
]
ALLOCATION_CASES: list[tuple[object, str]] = [
    ([], _esc("allocations must not be empty; omit the field instead")),
    ({"event": "E-1", "amount": "1.00"}, "Input should be a valid tuple"),
    ([{"event": "E-1", "amount": 1.0}], "not a number"),
    ([{"event": "E-1", "amount": "1.0"}], "exactly two fraction digits"),
    ([{"event": "E-1", "amount": "0.00"}], "greater than 0.00"),
    ([{"event": "E 1", "amount": "1.00"}], ID_ERROR),
    ([{"event": "E-1"}], "Field required"),
    ([{"event": "E-1", "amount": "1.00", "note": "x"}], "Extra inputs are not permitted"),
]

FIELD_CASES: dict[str, list[tuple[object, str]]] = {
    "amount": MONEY_CASES,
    "monthly_amount": MONEY_CASES,
    "effective_date": DATE_CASES,
    "due_date": DATE_CASES,
    "value_date": DATE_CASES,
    "period": PERIOD_CASES,
    "start_period": PERIOD_CASES,
    "person_id": TEXT_CASES,
    "employer_id": TEXT_CASES,
    "payer_id": TEXT_CASES,
    "account": TEXT_CASES,
    "payee_account": TEXT_CASES,
    "name": TEXT_CASES,
    "benefit": TEXT_CASES,
    "bank_ref": TEXT_CASES,
    "insurance": INSURANCE_CASES,
    "to_region": [("31010", REGION_ERROR), (310100, REGION_ERROR)],
    "from_region": [("3101000", REGION_ERROR)],
    "fund_account": FUND_ACCOUNT_CASES,
    "from_account": FUND_ACCOUNT_CASES,
    "to_account": FUND_ACCOUNT_CASES,
    "allocations": ALLOCATION_CASES,
    "returns": [("PAY 0001", ID_ERROR)],
    "sha256": [
        ("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", "64 lowercase hex"),
        ("9f86d081", "64 lowercase hex"),
    ],
    "media_type": [
        ("application/pdf; charset=binary", "without parameters"),
        ("pdf", _esc('must be a media type "type/subtype"')),
    ],
    "size": [
        (True, "Input should be a valid integer"),
        (1.0, "Input should be a valid integer"),
        ("48213", "Input should be a valid integer"),
        (-1, "Input should be greater than or equal to 0"),
        (2**63, "Input should be less than or equal to 9007199254740991"),
        (2**53, "Input should be less than or equal to 9007199254740991"),
    ],
    "entry_count": [
        (-1, "Input should be greater than or equal to 0"),
        (2**53, "Input should be less than or equal to 9007199254740991"),
    ],
    "file": [
        ("../outside.pdf", _esc('must not contain empty, "." or ".." path segments')),
        ("vouchers/../../etc/passwd", _esc('".."')),
        ("/etc/passwd", _esc('must be a relative path, not start with "/"')),
        ("vouchers\\slip.pdf", _esc('must use "/" separators')),
        ("vouchers//slip.pdf", "empty"),
        ("vouchers/slip.pdf/", "empty"),
        ("", "without control characters"),
        ("slip\x00.pdf", "without control characters"),
        (["slip.pdf"], "must be a string path"),
    ],
    "refs": [
        ([], "refs must name at least one record"),
        (["BP-1", "BP-1"], "refs must not name the same record twice"),
        (["BP 1"], ID_ERROR),
        ("BP-1", "Input should be a valid tuple"),
    ],
    "retention": [("5y", "Input should be '10y', '30y' or 'permanent'")],
}
KIND_FIELD_CASES: dict[tuple[str, str], list[tuple[object, str]]] = {
    ("business.termination", "insurance"): [("everything", "'maternity' or 'all'")],
    ("business.termination", "reason"): [("retired", "'death', 'emigration' or 'other'")],
    ("business.refund", "reason"): TEXT_CASES[:4],
    ("finance.return", "reason"): TEXT_CASES[:4],
    ("finance.statement", "currency"): [("USD", "'CNY'")],
    ("finance.statement", "entries"): [
        ([], "entries must not be empty; omit the field"),
        ([{"bank_ref": "R1", "direction": "debit", "amount": "-1.00",
           "value_date": "2026-03-31"}], "must not be negative"),
    ],
    ("finance.payment", "allocations"): [*ALLOCATION_CASES, (
        [{"event": f"BP-{i}", "amount": "999999999999999.99"} for i in range(2)],
        "add up to more than 999999999999999.99",
    )],
}
COMMON_CASES: list[tuple[str, object, str]] = [
    ("id", "BP 0001", ID_ERROR),
    ("id", "", ID_ERROR),
    ("id", "x" * 129, ID_ERROR),
    ("id", "编号1", ID_ERROR),
    ("id", 1, ID_ERROR),
    ("region", "44010", REGION_ERROR),
    ("region", "4401000", REGION_ERROR),
    ("region", 440100, REGION_ERROR),
    ("region", "44010a", REGION_ERROR),
    ("occurred_at", "2026-03-05T10:00:00", "timestamp has no UTC offset"),
    ("occurred_at", "2026-03-05 10:00:00", "timestamp has no UTC offset"),
    ("occurred_at", "2026-03-05", "must be RFC 3339 with an offset"),
    ("occurred_at", "2026-03-05T10:00:00+0800", "must be RFC 3339 with an offset"),
    ("occurred_at", "2026-02-30T10:00:00+08:00", "not a real date and time"),
    ("occurred_at", "2026-03-05T24:00:00+08:00", "must be RFC 3339 with an offset"),
    ("occurred_at", 1772676000, "timestamp must be a string"),
    ("corrects", None, ID_ERROR),
    ("corrects", "X 0000", ID_ERROR),
    ("source", None, TEXT_ERROR),
    ("source", " core", TEXT_ERROR),
]

_CASES = [
    pytest.param(type_, field, value, match, id=f"{type_}-{field}-{value!r:.30}")
    for type_ in KINDS
    for field in FULL[type_]
    for value, match in KIND_FIELD_CASES.get((type_, field), FIELD_CASES.get(field, []))
] + [
    pytest.param(type_, field, value, match, id=f"{type_}-{field}-{value!r:.30}")
    for type_ in KINDS
    for field, value, match in COMMON_CASES
]


@pytest.mark.parametrize(("type_", "field", "value", "match"), _CASES)
def test_malformed_field_is_refused(type_: str, field: str, value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as raised:
        parse_record(example(type_, **{field: value}))
    assert all(error["loc"][:2] == (type_, field) for error in raised.value.errors())


@pytest.mark.parametrize("type_", KINDS)
def test_unknown_field_is_refused(type_: str) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        parse_record(example(type_, comment="hello"))


@pytest.mark.parametrize(
    ("type_", "field"),
    [
        (t, f)
        for t in KINDS
        for f, info in RECORD_TYPES[t].model_fields.items()
        if info.is_required()
    ],
)
def test_missing_required_field_is_refused(type_: str, field: str) -> None:
    match = (
        "Unable to extract tag using discriminator 'type'" if field == "type" else "Field required"
    )
    with pytest.raises(ValidationError, match=match):
        parse_record(example(type_, **{field: DELETE}))


@pytest.mark.parametrize(
    ("type_", "field"),
    [(t, f) for t in KINDS for f in RECORD_TYPES[t].model_fields if f != "type"],
)
def test_null_is_refused_for_every_field(type_: str, field: str) -> None:
    with pytest.raises(ValidationError, match="input_value=None") as raised:
        parse_record(example(type_, **{field: None}))
    assert [error["loc"] for error in raised.value.errors()] == [(type_, field)]


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        parse_record(example("finance.payment", type="finance.loan"))


def test_type_of_another_kind_is_checked_as_that_kind() -> None:
    with pytest.raises(ValidationError, match="5 validation errors") as raised:
        parse_record(example("finance.payment", type="finance.sweep"))
    assert {(e["loc"][1], e["type"]) for e in raised.value.errors()} == {
        ("from_account", "missing"),
        ("to_account", "missing"),
        ("payee_account", "extra_forbidden"),
        ("allocations", "extra_forbidden"),
        ("fund_account", "extra_forbidden"),
    }


@pytest.mark.parametrize("type_", KINDS)
def test_record_cannot_correct_itself(type_: str) -> None:
    with pytest.raises(ValidationError, match="corrects must name an earlier record"):
        parse_record(example(type_, corrects=FULL[type_]["id"]))


def test_sweep_between_one_account_is_refused() -> None:
    with pytest.raises(ValidationError, match="between two different accounts"):
        parse_record(example("finance.sweep", to_account="income"))


def test_sweep_names_its_accounts_instead_of_fund_account() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted") as raised:
        parse_record(example("finance.sweep", fund_account="income"))
    assert raised.value.errors()[0]["loc"] == ("finance.sweep", "fund_account")


def test_return_requires_allocations() -> None:
    with pytest.raises(ValidationError, match="Field required") as raised:
        parse_record(example("finance.return", allocations=DELETE))
    assert raised.value.errors()[0]["loc"] == ("finance.return", "allocations")


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(ValidationError, match=TEXT_ERROR) as raised:
        parse_record(example("finance.payment", bank_ref="B\ud800"))
    assert raised.value.errors()[0]["loc"] == ("finance.payment", "bank_ref")
    with pytest.raises(ValidationError, match="Invalid JSON"):
        parse_record_json(json.dumps(example("finance.payment", bank_ref="B\ud800")))


def test_money_from_python_may_be_a_decimal_with_two_places() -> None:
    data = example("finance.payment", amount=Decimal("6913.56"))
    assert record_payload(parse_record(data))["amount"] == "6913.56"
    with pytest.raises(ValidationError, match="exactly two fraction digits"):
        parse_record(example("finance.payment", amount=Decimal("6913.5")))


def test_error_title_is_short() -> None:
    with pytest.raises(ValidationError, match=r"^1 validation error for InterchangeRecord\n"):
        parse_record(example("finance.payment", amount=1))


# --- properties ---------------------------------------------------------------------------

_SURROGATES = st.characters(categories=["Cs"])
_TEXT = st.text(max_size=8) | st.text(st.characters() | _SURROGATES, max_size=4)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | _TEXT
    | st.sampled_from(["3456.78", "0.00", "2026-03", "2026-03-05", "440100", "income"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_FIELD_NAMES = st.sampled_from(sorted({f for m in RECORD_TYPES.values() for f in m.model_fields}))


def _assert_lossless_or_refused(data: dict[str, Any]) -> None:
    try:
        record = parse_record(data)
    except ValidationError:
        event("refused")
        return
    event("accepted")
    assert canonical(record_payload(record)) == canonical(data)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_TEXT | _FIELD_NAMES, _JSON, max_size=6))
def test_random_dicts_raise_only_validation_error(data: dict[str, Any]) -> None:
    _assert_lossless_or_refused(data)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(KINDS),
    st.dictionaries(_FIELD_NAMES | _TEXT, _JSON, max_size=3),
    st.lists(_FIELD_NAMES, max_size=2),
)
def test_mutated_records_are_refused_or_kept_exactly(
    type_: str, changes: dict[str, Any], removed: list[str]
) -> None:
    data = {**FULL[type_], **changes}
    for key in removed:
        data.pop(key, None)
    _assert_lossless_or_refused(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | _TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_random_bytes_raise_only_validation_error(data: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_record_json(data)


_MONEY = st.from_regex(MONEY_PATTERN, fullmatch=True).filter(
    lambda m: not m.startswith("-") and m != "0.00"
)
_IDS = st.from_regex(RECORD_ID_PATTERN, fullmatch=True)
_OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def _timestamps(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(timezones=_OFFSETS))
    text = moment.isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds"])))
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KINDS), _IDS, _MONEY, _timestamps(), st.dates().map(date.isoformat), _IDS)
def test_generated_valid_records_render_back_exactly(
    type_: str, id_: str, money: str, timestamp: str, day: str, ref: str
) -> None:
    data = example(type_, id=id_, occurred_at=timestamp)
    if data["corrects"] == id_:
        data["corrects"] = id_ + "0" if len(id_) < 128 else "X"
    for field in ("amount", "monthly_amount"):
        if field in data:
            data[field] = money
    for field in ("effective_date", "due_date", "value_date"):
        if field in data:
            data[field] = day
    if "refs" in data:
        data["refs"] = [ref]
    if "allocations" in data:
        data["allocations"] = [{"event": ref, "amount": money}]
    record = parse_record(data)
    assert canonical(record_payload(record)) == canonical(data)
    assert parse_record_json(json.dumps(data)) == record
    assert to_datetime(record.occurred_at).utcoffset() is not None


def test_package_docstring_example_runs() -> None:
    import doctest

    import schemas

    assert doctest.testmod(schemas).failed == 0
