"""Field types of the interchange contract and the ledger documents.

This module owns the scalar vocabulary of both: money, record ids,
region codes, RFC 3339 timestamps, dates, periods, digests, media types, archive paths,
free text, and the closed vocabularies (insurance, fund account, retention, termination
reason). Every type is an ``Annotated`` alias usable as a pydantic v2 field annotation;
each one validates in strict mode, keeps the text exactly as given where the text is
what gets hashed (timestamps, dates, periods), and says in one sentence what it expected.

Pattern types are checked inside pydantic-core (no Python call per field). Money,
timestamps, dates and archive paths need a little Python (``Decimal``, calendar checks,
path segments); those validators use precompiled regexes and do no other work.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler, Strict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

__all__ = [
    "Base64Hash",
    "CertificationMethod",
    "Code",
    "Count",
    "Domain",
    "FundAccount",
    "Insurance",
    "InsuranceOrAll",
    "IsoDate",
    "JsonSchemaExtra",
    "MediaType",
    "Money",
    "Name",
    "Omittable",
    "Period",
    "PersonalText",
    "PositiveMoney",
    "RecordId",
    "RegionCode",
    "RelativePath",
    "Retention",
    "Sha256Hex",
    "ShortText",
    "TerminationReason",
    "Text",
    "Timestamp",
    "to_date",
    "to_datetime",
]

# --- closed vocabularies ----------------------------------------------------------

Domain = Literal["business", "finance", "archive"]
Insurance = Literal["pension", "medical", "unemployment", "work_injury", "maternity"]
InsuranceOrAll = Literal["pension", "medical", "unemployment", "work_injury", "maternity", "all"]
FundAccount = Literal["income", "expenditure", "fiscal_special"]
Retention = Literal["10y", "30y", "permanent"]
TerminationReason = Literal["death", "emigration", "other"]
CertificationMethod = Literal["in_person", "face", "data_match", "other"]
"""How a benefit recipient's 资格认证 was made (INTERCHANGE v1.1)."""

# --- patterns (anchored; ASCII classes only, so they mean the same in Rust, Python
# and ECMA-262 JSON Schema validators) ------------------------------------------------

MONEY_PATTERN: Final = r"^-?(0|[1-9][0-9]{0,14})\.[0-9]{2}$"
RECORD_ID_PATTERN: Final = r"^[A-Za-z0-9._:/-]{1,128}$"
REGION_PATTERN: Final = r"^[0-9]{6}$"
PERIOD_PATTERN: Final = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
DATE_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TIMESTAMP_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
SHA256_PATTERN: Final = r"^[0-9a-f]{64}$"
# 32 bytes in standard padded base64: 43 symbols, the last carrying 2 data bits, then "=".
BASE64_HASH_PATTERN: Final = r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"
MEDIA_TYPE_PATTERN: Final = (
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)
# Printable text: no control characters anywhere, no whitespace at either end.
TEXT_PATTERN: Final = (
    r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
)
NAME_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
CODE_PATTERN: Final = r"^[A-Z][A-Z0-9_]{0,63}$"

MONEY_EXAMPLE: Final = '"3456.78"'
TIMESTAMP_EXAMPLE: Final = '"2026-03-01T09:30:00+08:00"'


@dataclass(frozen=True, slots=True)
class _Pattern:
    """Annotation: a string matched against ``pattern`` by pydantic-core, one clear error.

    Any failure (wrong type, too long, no match, unpaired surrogate) is reported as
    ``error_type`` with ``message``; the location and input value are in the error.
    """

    pattern: str
    error_type: str
    message: str
    max_length: int | None = None
    description: str | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.custom_error_schema(
            core_schema.str_schema(pattern=self.pattern, max_length=self.max_length, strict=True),
            custom_error_type=self.error_type,
            custom_error_message=self.message,
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if self.description:
            json_schema["description"] = self.description
        return json_schema


@dataclass(frozen=True, slots=True)
class _Personal:
    """Annotation: marks a field as personal data (``"x-personal": true`` in JSON Schema)."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("description", "Personal data.")
        json_schema["x-personal"] = True
        return json_schema


@dataclass(frozen=True, slots=True)
class JsonSchemaExtra:
    """Annotation: adds keywords to a type's JSON Schema (for checks done in Python)."""

    keywords: tuple[tuple[str, object], ...]

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(self.keywords)
        return json_schema


@dataclass(frozen=True, slots=True)
class _AbsentNotNull:
    """Annotation for ``X | None``: the field may be omitted, but never sent as ``null``.

    The core schema drops the ``nullable`` wrapper, so an explicit ``null`` fails with the
    inner type's error while an absent field takes its ``None`` default. Every accepted
    record therefore renders back to exactly the dict it was parsed from.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        schema = handler(source)
        if schema["type"] == "nullable":
            inner: CoreSchema = schema["schema"]
            return inner
        return schema  # pragma: no cover - Omittable always wraps an optional type


_T = TypeVar("_T")

Omittable = Annotated[_T | None, _AbsentNotNull()]
"""An optional field: absent or a valid value, never ``null``. Give it ``= None``."""


# --- pattern types ---------------------------------------------------------------

RecordId = Annotated[
    str,
    _Pattern(
        RECORD_ID_PATTERN,
        "record_id",
        "must be a record id: 1 to 128 characters of A-Z a-z 0-9 . _ : / -",
        description="Natural key: 1–128 characters of [A-Za-z0-9._:/-].",
    ),
]
RegionCode = Annotated[
    str,
    _Pattern(
        REGION_PATTERN,
        "region_code",
        'must be a 6-digit region code string, like "440100"',
        description="Pooling-region code (统筹区编码), 6 digits.",
    ),
]
Period = Annotated[
    str,
    _Pattern(
        PERIOD_PATTERN,
        "period",
        'must be a period "YYYY-MM" with a month from 01 to 12, like "2026-03"',
        description="Month, YYYY-MM.",
    ),
]
Sha256Hex = Annotated[
    str,
    _Pattern(
        SHA256_PATTERN,
        "sha256_hex",
        "must be a SHA-256 digest: 64 lowercase hex digits",
        description="SHA-256 digest, 64 lowercase hex digits.",
    ),
]
Base64Hash = Annotated[
    str,
    _Pattern(
        BASE64_HASH_PATTERN,
        "base64_hash",
        "must be a 32-byte hash in standard base64 (44 characters ending in '=')",
        description="32-byte hash, standard padded base64.",
    ),
]
MediaType = Annotated[
    str,
    _Pattern(
        MEDIA_TYPE_PATTERN,
        "media_type",
        'must be a media type "type/subtype" without parameters, like "application/pdf"',
        description="Media type (RFC 6838) without parameters, e.g. application/pdf.",
    ),
]
ShortText = Annotated[
    str,
    _Pattern(
        TEXT_PATTERN,
        "short_text",
        "must be 1 to 128 characters, without control characters or leading/trailing whitespace",
        max_length=128,
    ),
]
Text = Annotated[
    str,
    _Pattern(
        TEXT_PATTERN,
        "text",
        "must be 1 to 1024 characters, without control characters or leading/trailing whitespace",
        max_length=1024,
    ),
]
PersonalText = Annotated[ShortText, _Personal()]
"""Personal data (ID numbers, bank accounts, names): ``ShortText`` marked ``x-personal``."""

Name = Annotated[
    str,
    _Pattern(NAME_PATTERN, "name", 'must be a lowercase name like "benefit_payment"'),
]
Code = Annotated[
    str,
    _Pattern(CODE_PATTERN, "code", 'must be an upper-case code like "AMOUNT_MISMATCH"'),
]
JSON_SAFE_INTEGER: Final = 2**53 - 1
"""The largest integer a hashed document may hold (I-JSON, RFC 7493 §2.2): beyond it,
readers that hold numbers as doubles no longer agree on the value, and the RFC 8785
bytes of the ledger would not verify."""

Count = Annotated[int, Strict(), Field(ge=0, le=JSON_SAFE_INTEGER)]
"""A count or size: a JSON integer from 0 to 2**53 - 1 (I-JSON; ``true``/``false`` and
``1.0`` are refused)."""


# --- money -------------------------------------------------------------------------

_MONEY_RE: Final = re.compile(MONEY_PATTERN)


MoneySign = Literal["any", "unsigned", "positive"]


def _money(value: object, sign: MoneySign) -> Decimal:
    if type(value) is str:
        text = value
    elif type(value) is Decimal:  # programmatic construction; must print canonically
        text = str(value)
    elif type(value) in (int, float):
        raise PydanticCustomError(
            "money_type", f"money must be a string like {MONEY_EXAMPLE}, not a number"
        )
    else:
        raise PydanticCustomError("money_type", f"money must be a string like {MONEY_EXAMPLE}")
    if _MONEY_RE.fullmatch(text) is None:
        raise PydanticCustomError(
            "money_format",
            "money must have exactly two fraction digits and at most 15 integer digits, "
            f"without leading zeros or '+', like {MONEY_EXAMPLE}",
        )
    if sign == "positive" and (text[0] == "-" or text == "0.00"):
        raise PydanticCustomError("money_not_positive", "amount must be greater than 0.00")
    if sign == "unsigned" and text[0] == "-":
        raise PydanticCustomError(
            "money_signed", "amount must not be negative (its direction says which way)"
        )
    return Decimal(text)


_UNSIGNED_MONEY_PATTERN: Final = r"^(0|[1-9][0-9]{0,14})\.[0-9]{2}$"


@dataclass(frozen=True, slots=True)
class _MoneySchema:
    """Annotation: money parsed from its string to ``Decimal``, dumped back to that string."""

    sign: MoneySign

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        sign = self.sign
        return core_schema.no_info_plain_validator_function(
            lambda value: _money(value, sign),
            serialization=core_schema.to_string_ser_schema(when_used="json"),
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        kind = {"any": "amount", "unsigned": "non-negative amount", "positive": "positive amount"}
        json_schema: JsonSchemaValue = {
            "type": "string",
            "pattern": MONEY_PATTERN if self.sign == "any" else _UNSIGNED_MONEY_PATTERN,
            "description": f"Money, a {kind[self.sign]} in yuan as a decimal string with exactly "
            'two fraction digits, e.g. "3456.78"; never a JSON number.',
        }
        if self.sign == "positive":
            json_schema["not"] = {"const": "0.00"}
        return json_schema


Money = Annotated[Decimal, _MoneySchema("any")]
"""Money in yuan: a string like ``"3456.78"`` (``-`` allowed), parsed to ``Decimal``."""
UnsignedMoney = Annotated[Decimal, _MoneySchema("unsigned")]
"""Money of at least ``0.00``: a bank statement entry's amount (its direction gives the sign)."""
PositiveMoney = Annotated[Decimal, _MoneySchema("positive")]
"""Money greater than ``0.00``: every amount of the v1 interchange kinds."""


# --- timestamps and dates (kept as the given text) ---------------------------------

_TIMESTAMP_RE: Final = re.compile(TIMESTAMP_PATTERN)
_NAIVE_TIMESTAMP_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
)
_DATE_RE: Final = re.compile(DATE_PATTERN)


def to_datetime(timestamp: str) -> datetime:
    """The timezone-aware ``datetime`` of a validated ``Timestamp`` string.

    Fractions beyond microseconds are truncated (``datetime`` holds no more).

    Raises:
        ValueError: ``timestamp`` is not a valid ``Timestamp``.
    """
    if _TIMESTAMP_RE.fullmatch(timestamp) is None:
        raise ValueError(f"not an RFC 3339 timestamp with offset: {timestamp!r}")
    # RFC 3339 §5.6 allows lower-case "t" and "z"; datetime.fromisoformat does not.
    return datetime.fromisoformat(timestamp.upper())


def _timestamp(value: object) -> str:
    if type(value) is not str:
        raise PydanticCustomError(
            "timestamp_type", f"timestamp must be a string like {TIMESTAMP_EXAMPLE}"
        )
    if _TIMESTAMP_RE.fullmatch(value) is None:
        if _NAIVE_TIMESTAMP_RE.fullmatch(value):
            raise PydanticCustomError(
                "timestamp_naive",
                f"timestamp has no UTC offset; RFC 3339 requires one, like {TIMESTAMP_EXAMPLE}",
            )
        raise PydanticCustomError(
            "timestamp_format",
            f"timestamp must be RFC 3339 with an offset, like {TIMESTAMP_EXAMPLE}",
        )
    try:
        datetime.fromisoformat(value.upper())
    except ValueError as e:
        raise PydanticCustomError(
            "timestamp_value", "timestamp is not a real date and time: {reason}", {"reason": str(e)}
        ) from e
    return value


def to_date(iso_date: str) -> date:
    """The ``date`` of a validated ``IsoDate`` string.

    Raises:
        ValueError: ``iso_date`` is not a valid ``IsoDate``.
    """
    if _DATE_RE.fullmatch(iso_date) is None:
        raise ValueError(f"not a YYYY-MM-DD date: {iso_date!r}")
    return date.fromisoformat(iso_date)


def _iso_date(value: object) -> str:
    if type(value) is not str or _DATE_RE.fullmatch(value) is None:
        raise PydanticCustomError("date_format", 'date must be "YYYY-MM-DD", like "2026-03-01"')
    try:
        date.fromisoformat(value)
    except ValueError as e:
        raise PydanticCustomError(
            "date_value", "date is not a real calendar date: {reason}", {"reason": str(e)}
        ) from e
    return value


# --- archive paths -------------------------------------------------------------------

_PATH_CHARS_RE: Final = re.compile(r"[^\\\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,1024}")
_PATH_MAX: Final = 1024


def _relative_path(value: object) -> str:
    if type(value) is not str:
        raise PydanticCustomError("path_type", "file must be a string path")
    if "\\" in value:
        raise PydanticCustomError("path_backslash", 'file must use "/" separators, not "\\"')
    if _PATH_CHARS_RE.fullmatch(value) is None:
        raise PydanticCustomError(
            "path_chars",
            f"file must be 1 to {_PATH_MAX} characters without control characters",
        )
    if value[0] == "/":
        raise PydanticCustomError(
            "path_absolute", 'file must be a relative path, not start with "/"'
        )
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise PydanticCustomError(
                "path_segment", 'file must not contain empty, "." or ".." path segments'
            )
    return value


@dataclass(frozen=True, slots=True)
class _Checked:
    """Annotation: a string checked by a Python function; ``json_schema`` documents it."""

    function: Callable[[object], str]
    json_schema: tuple[tuple[str, str], ...]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self.function)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", **dict(self.json_schema)}


Timestamp = Annotated[
    str,
    _Checked(
        _timestamp,
        (
            ("format", "date-time"),
            ("pattern", TIMESTAMP_PATTERN),
            ("description", "RFC 3339 timestamp with a UTC offset, kept as given."),
        ),
    ),
]
"""RFC 3339 timestamp with offset, kept as the given string; see ``to_datetime``."""

IsoDate = Annotated[
    str,
    _Checked(
        _iso_date,
        (
            ("format", "date"),
            ("pattern", DATE_PATTERN),
            ("description", "Calendar date, YYYY-MM-DD."),
        ),
    ),
]
"""A real calendar date ``YYYY-MM-DD``, kept as the given string; see ``to_date``."""

RelativePath = Annotated[
    str,
    _Checked(
        _relative_path,
        (
            ("pattern", r"^[^/\\\x00-\x1f\x7f-\x9f][^\\\x00-\x1f\x7f-\x9f]{0,1023}$"),
            (
                "description",
                'Relative POSIX path: "/" separators, no backslash, no leading "/", '
                'no empty, "." or ".." segments.',
            ),
        ),
    ),
]
"""A relative POSIX path that cannot leave its directory."""
