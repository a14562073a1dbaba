"""Models of the interchange records upstream systems hand to the ledger (INTERCHANGE v1).

This module owns one frozen, strict pydantic model per record kind of the business,
finance and archive domains, the discriminated union ``InterchangeRecord`` over their
``type`` field, and the functions the ingest path calls per line: ``parse_record`` /
``parse_record_json`` (validate) and ``record_payload`` (render back to the exact JSON
object that is canonicalised and hashed downstream).

What is checked here is the shape of one record. What needs other records (does an
allocation's event exist, do allocations add up, does ``corrects`` name an earlier
record) is the ledger's and the reconciler's business: allocations that do not add up
are accepted on purpose.

Optional fields may be omitted but are never ``null``, so for every accepted ``d``,
``record_payload(parse_record(d)) == d``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Annotated, Final, Literal, TypeAlias, cast, get_args

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas._base import FrozenModel
from schemas._types import (
    CertificationMethod,
    Count,
    Domain,
    FundAccount,
    Insurance,
    InsuranceOrAll,
    IsoDate,
    JsonSchemaExtra,
    MediaType,
    Money,
    Omittable,
    Period,
    PersonalText,
    PositiveMoney,
    RecordId,
    RegionCode,
    RelativePath,
    Retention,
    Sha256Hex,
    ShortText,
    TerminationReason,
    Text,
    Timestamp,
    UnsignedMoney,
)

__all__ = [
    "PARTY_FIELDS",
    "PERSONAL_FIELDS",
    "RECORD_TYPES",
    "Allocation",
    "ArchiveAccountingVoucher",
    "ArchiveApplicationForm",
    "ArchiveApprovalDocument",
    "ArchiveBankSlip",
    "ArchiveBankStatement",
    "ArchiveFiscalReceipt",
    "ArchiveReconciliationStatement",
    "ArchiveVoucher",
    "BusinessBenefitApproval",
    "BusinessBenefitPayment",
    "BusinessCertification",
    "BusinessContributionAssessment",
    "BusinessEnrollment",
    "BusinessRecord",
    "BusinessRefund",
    "BusinessTermination",
    "BusinessTransferIn",
    "BusinessTransferOut",
    "FinanceCollection",
    "FinanceMovement",
    "FinancePayment",
    "FinanceRefund",
    "FinanceReturn",
    "FinanceStatement",
    "FinanceSweep",
    "FinanceTransfer",
    "InterchangeRecord",
    "Record",
    "RecordBase",
    "StatementLine",
    "Withdrawal",
    "domain_of",
    "kind_of",
    "parse_record",
    "parse_record_json",
    "record_payload",
]

PERSONAL_FIELDS: Final[frozenset[str]] = frozenset(
    {"person_id", "account", "payee_account", "name", "payer_id"}
)
"""Fields holding personal data (INTERCHANGE "Personal data"); typed ``PersonalText``."""

PARTY_FIELDS: Final[frozenset[str]] = frozenset({"person_id", "payer_id", "employer_id"})
"""Party identifiers compared with one another (``payer_id`` = ``employer_id``/``person_id``)."""


class Withdrawal(FrozenModel):
    """What withdraws a record (红冲, FORMAT.md §9.8): the approved request and its reason.
    Only ``bfa statement approve`` writes it; a file that sends it is refused."""

    request: RecordId
    """The ``control.withdrawal`` request's id."""
    reason: Text
    requested_by: ShortText
    """The identity that asked for the withdrawal (another identity approves it)."""


class RecordBase(FrozenModel):
    """Fields every interchange record has."""

    type: str
    """``"<domain>.<kind>"``; each kind narrows it to its own literal."""
    id: RecordId
    """Natural key, unique within its domain."""
    region: RegionCode
    """Pooling-region code (统筹区编码)."""
    occurred_at: Timestamp
    """When it happened in the source system."""
    corrects: Omittable[RecordId] = None
    """Id of an earlier record of the same domain that this record supersedes."""
    source: Omittable[ShortText] = None
    """Name of the producing system."""
    withdrawn: Omittable[Withdrawal] = None
    """Set on the correction that withdraws the record it corrects (红冲): the record no
    longer counts anywhere (FORMAT.md §9.8)."""

    @model_validator(mode="after")
    def _not_self_correcting(self) -> RecordBase:
        if self.corrects == self.id:
            raise PydanticCustomError(
                "corrects_self", "corrects must name an earlier record, not the record itself"
            )
        if self.withdrawn is not None and self.corrects is None:
            raise PydanticCustomError(
                "withdrawn_without_corrects", "a withdrawal corrects the record it withdraws")
        return self

    @property
    def domain(self) -> Domain:
        """``"business"``, ``"finance"`` or ``"archive"``."""
        return domain_of(self.type)

    @property
    def kind(self) -> str:
        """The part of ``type`` after the domain, e.g. ``"benefit_payment"``."""
        return kind_of(self.type)


# --- business domain -----------------------------------------------------------------


class BusinessRecord(RecordBase):
    """An insurance-relationship event from the business system."""


class BusinessEnrollment(BusinessRecord):
    """A person enrolled in an insurance."""

    type: Literal["business.enrollment"]
    person_id: PersonalText
    """National ID number of the insured person."""
    employer_id: Omittable[ShortText] = None
    insurance: Insurance
    effective_date: IsoDate
    name: Omittable[PersonalText] = None
    """The person's name."""


class BusinessContributionAssessment(BusinessRecord):
    """Contributions assessed (核定) on an employer, optionally for one person."""

    type: Literal["business.contribution_assessment"]
    employer_id: ShortText
    person_id: Omittable[PersonalText] = None
    insurance: Insurance
    period: Period
    amount: PositiveMoney
    due_date: IsoDate


class BusinessBenefitApproval(BusinessRecord):
    """A benefit approved for a person, paid monthly into ``account``."""

    type: Literal["business.benefit_approval"]
    person_id: PersonalText
    insurance: Insurance
    benefit: ShortText
    """Benefit code, e.g. ``basic_pension``."""
    monthly_amount: PositiveMoney
    start_period: Period
    account: PersonalText
    """Bank account the benefit is paid into."""
    name: Omittable[PersonalText] = None


class BusinessBenefitPayment(BusinessRecord):
    """One benefit payment due to a person for a period."""

    type: Literal["business.benefit_payment"]
    person_id: PersonalText
    insurance: Insurance
    period: Period
    amount: PositiveMoney
    account: PersonalText
    name: Omittable[PersonalText] = None
    benefit: Omittable[ShortText] = None
    """Which benefit is paid (v1.1), e.g. ``funeral_grant``, ``back_pay``; absent: the
    recurring benefit of the approval in force (INTERCHANGE.md §12)."""


class BusinessRefund(BusinessRecord):
    """Contributions to be refunded to a person or an employer."""

    type: Literal["business.refund"]
    payer_id: PersonalText
    """Who paid and is refunded: a person's ID number or an employer id."""
    insurance: Insurance
    amount: PositiveMoney
    reason: Text


class BusinessTransferOut(BusinessRecord):
    """A person's insurance relationship (and fund) transferred to another region."""

    type: Literal["business.transfer_out"]
    person_id: PersonalText
    insurance: Insurance
    to_region: RegionCode
    amount: PositiveMoney


class BusinessTransferIn(BusinessRecord):
    """A person's insurance relationship (and fund) transferred in from another region."""

    type: Literal["business.transfer_in"]
    person_id: PersonalText
    insurance: Insurance
    from_region: RegionCode
    amount: PositiveMoney


class BusinessTermination(BusinessRecord):
    """A person's insurance relationship ended (one insurance or ``"all"``)."""

    type: Literal["business.termination"]
    person_id: PersonalText
    insurance: InsuranceOrAll
    effective_date: IsoDate
    reason: TerminationReason


class BusinessCertification(BusinessRecord):
    """资格认证 (v1.1): a benefit recipient was confirmed alive and entitled."""

    type: Literal["business.certification"]
    person_id: PersonalText
    insurance: Insurance
    method: CertificationMethod
    certified_on: IsoDate


# --- finance domain ------------------------------------------------------------------


class Allocation(FrozenModel):
    """The part of a movement's amount that settles one business event."""

    event: RecordId
    """Id of the business event settled."""
    amount: PositiveMoney


_MAX_TOTAL = Decimal("999999999999999.99")
"""The largest money amount (15 integer digits); allocations may not add up to more."""


def _non_empty_allocations(allocations: tuple[Allocation, ...]) -> tuple[Allocation, ...]:
    # Checked after the items (not with min_length) so a bad item is not also reported
    # as "too short".
    if not allocations:
        raise PydanticCustomError(
            "allocations_empty", "allocations must not be empty; omit the field instead"
        )
    # A total that does not match the movement is the reconciler's finding; one beyond
    # any amount the interchange can express is refused (it could not be summed in fen).
    if sum(a.amount for a in allocations) > _MAX_TOTAL:
        raise PydanticCustomError(
            "allocations_total",
            "allocations add up to more than 999999999999999.99, the largest amount",
        )
    return allocations


Allocations = Annotated[
    tuple[Allocation, ...],
    Strict(False),
    AfterValidator(_non_empty_allocations),
    JsonSchemaExtra((("minItems", 1),)),
]
"""A non-empty JSON array of allocations (an empty one is refused: omit the field)."""


class FinanceMovement(RecordBase):
    """A fund movement from the finance system."""

    amount: PositiveMoney
    value_date: IsoDate
    bank_ref: ShortText
    """The bank's transaction reference."""


class _OnFundAccount(FinanceMovement):
    fund_account: Omittable[FundAccount] = None
    """The fund account the money moved on."""


class FinanceCollection(_OnFundAccount):
    """Money received (a credit)."""

    type: Literal["finance.collection"]
    payer_id: Omittable[PersonalText] = None
    """Who paid: a person's ID number or an employer id."""
    allocations: Omittable[Allocations] = None
    """The business events this movement settles; absent when unallocated."""


class _PaymentLike(_OnFundAccount):
    payee_account: Omittable[PersonalText] = None
    """Bank account credited."""
    allocations: Omittable[Allocations] = None
    """The business events this movement settles; absent when unallocated."""


class FinancePayment(_PaymentLike):
    """Money paid out (a debit), e.g. one bank batch paying many benefit payments."""

    type: Literal["finance.payment"]


class FinanceRefund(_PaymentLike):
    """Contributions paid back."""

    type: Literal["finance.refund"]


class FinanceTransfer(_PaymentLike):
    """Fund transferred to another pooling region."""

    type: Literal["finance.transfer"]
    to_region: RegionCode


class FinanceReturn(_OnFundAccount):
    """A payment the bank could not credit and sent back (待遇退票)."""

    type: Literal["finance.return"]
    returns: RecordId
    """Id of the payment movement returned."""
    allocations: Allocations
    """The events whose money came back."""
    reason: Text


class FinanceSweep(FinanceMovement):
    """A transfer between the fund's own accounts; it names both ends."""

    type: Literal["finance.sweep"]
    from_account: FundAccount
    to_account: FundAccount

    @model_validator(mode="after")
    def _two_accounts(self) -> FinanceSweep:
        if self.from_account == self.to_account:
            raise PydanticCustomError(
                "sweep_same_account", "a sweep must move money between two different accounts"
            )
        return self


class StatementLine(FrozenModel):
    """One entry of a bank statement, as the bank reported it (``finance.statement``)."""

    bank_ref: ShortText
    """The entry's reference (camt.053 ``AcctSvcrRef``, else ``NtryRef``; MT940 ``:61:``)."""
    direction: Literal["credit", "debit"]
    amount: UnsignedMoney
    """The entry's amount, not signed (``direction`` says which way)."""
    value_date: IsoDate


def _non_empty_entries(entries: tuple[StatementLine, ...]) -> tuple[StatementLine, ...]:
    if not entries:
        raise PydanticCustomError("entries_empty", "entries must not be empty; omit the field")
    return entries


StatementLines = Annotated[
    tuple[StatementLine, ...],
    Strict(False),
    AfterValidator(_non_empty_entries),
    JsonSchemaExtra((("minItems", 1),)),
]


class FinanceStatement(RecordBase):
    """A bank statement's header and entry list (camt.053 ``Stmt``, MT940 message).

    Its entries become (or confirm) ``collection``/``payment`` movements; this record
    keeps what the bank said so balance continuity (opening + entries = closing, one
    statement's closing = the next one's opening) and book-versus-bank can be checked.
    Balances are signed: a debit (overdrawn) balance is negative.
    """

    type: Literal["finance.statement"]
    bank_account: ShortText
    """The bank account the statement is for (the fund's own account, not personal data)."""
    currency: Literal["CNY"]
    """Only CNY (FORMAT.md §9.6); the statement import refuses anything else."""
    format: Literal["camt053", "mt940"]
    fund_account: Omittable[FundAccount] = None
    sequence: Omittable[ShortText] = None
    """Electronic sequence number (camt.053 ``ElctrncSeqNb``, MT940 ``:28C:``)."""
    opening_balance: Omittable[Money] = None
    opening_date: Omittable[IsoDate] = None
    closing_balance: Omittable[Money] = None
    closing_date: Omittable[IsoDate] = None
    entry_count: Count
    entries_net: Money
    """Credits minus debits over all entries."""
    entries: Omittable[StatementLines] = None


# --- archive domain ------------------------------------------------------------------


def _unique_refs(refs: tuple[str, ...]) -> tuple[str, ...]:
    if not refs:
        raise PydanticCustomError("refs_empty", "refs must name at least one record")
    if len(set(refs)) != len(refs):
        raise PydanticCustomError("refs_duplicate", "refs must not name the same record twice")
    return refs


Refs = Annotated[
    tuple[RecordId, ...],
    Strict(False),
    AfterValidator(_unique_refs),
    JsonSchemaExtra((("minItems", 1), ("uniqueItems", True))),
]
"""A non-empty JSON array of distinct record ids."""


class ArchiveVoucher(RecordBase):
    """An electronic voucher: a file in the archive evidencing business/finance records."""

    sha256: Sha256Hex
    """SHA-256 of the voucher file's bytes."""
    media_type: MediaType
    size: Count
    """File size in bytes."""
    file: RelativePath
    """Path of the file, relative to the directory of the JSON Lines file."""
    refs: Refs
    """Ids of the business and/or finance records this voucher evidences."""
    amount: Omittable[PositiveMoney] = None
    """The amount printed on the voucher."""
    retention: Retention


class ArchiveFiscalReceipt(ArchiveVoucher):
    """财政电子票据."""

    type: Literal["archive.fiscal_receipt"]


class ArchiveBankSlip(ArchiveVoucher):
    """银行回单."""

    type: Literal["archive.bank_slip"]


class ArchiveAccountingVoucher(ArchiveVoucher):
    """记账凭证."""

    type: Literal["archive.accounting_voucher"]


class ArchiveApplicationForm(ArchiveVoucher):
    """An application form."""

    type: Literal["archive.application_form"]


class ArchiveApprovalDocument(ArchiveVoucher):
    """An approval document."""

    type: Literal["archive.approval_document"]


class ArchiveBankStatement(ArchiveVoucher):
    """银行对账单 (v1.1): a bank statement file as the bank sent it. ``bfa ingest --format
    camt053|mt940`` keeps every file it reads as one, referring to the statement records
    and the movements the file made or confirmed (FORMAT.md §9.6); minimum retention 10y."""

    type: Literal["archive.bank_statement"]


class ArchiveReconciliationStatement(ArchiveVoucher):
    """银行存款余额调节表 (v1.1): a bank reconciliation statement. Accepted from JSON Lines
    like any voucher; the ledger does not make one itself (``bfa balance`` computes the
    statement but does not archive it); minimum retention 10y."""

    type: Literal["archive.reconciliation_statement"]


# --- the union and the hot-path functions ----------------------------------------------

Record: TypeAlias = (
    BusinessEnrollment
    | BusinessContributionAssessment
    | BusinessBenefitApproval
    | BusinessBenefitPayment
    | BusinessRefund
    | BusinessTransferOut
    | BusinessTransferIn
    | BusinessTermination
    | BusinessCertification
    | FinanceCollection
    | FinancePayment
    | FinanceRefund
    | FinanceTransfer
    | FinanceReturn
    | FinanceSweep
    | FinanceStatement
    | ArchiveFiscalReceipt
    | ArchiveBankSlip
    | ArchiveAccountingVoucher
    | ArchiveApplicationForm
    | ArchiveApprovalDocument
    | ArchiveBankStatement
    | ArchiveReconciliationStatement
)
"""Any interchange record (for annotations)."""

InterchangeRecord = Annotated[Record, Field(discriminator="type")]
"""Any interchange record, validated by its ``type`` (for pydantic)."""


def _type_of(model: type[RecordBase]) -> str:
    (value,) = get_args(model.model_fields["type"].annotation)
    assert isinstance(value, str)
    return value


RECORD_TYPES: Final[Mapping[str, type[Record]]] = MappingProxyType(
    {_type_of(model): model for model in get_args(Record)}
)
"""Read-only map from ``type`` (``"business.benefit_payment"``) to its model class."""


def _split(type_: str) -> tuple[Domain, str]:
    domain, kind = type_.split(".", 1)
    assert domain in get_args(Domain), type_
    return cast(Domain, domain), kind


_DOMAIN_KIND: Final[Mapping[str, tuple[Domain, str]]] = MappingProxyType(
    {type_: _split(type_) for type_ in RECORD_TYPES}
)

_ADAPTER: Final[TypeAdapter[Record]] = TypeAdapter(
    InterchangeRecord, config=ConfigDict(title="InterchangeRecord")
)


def parse_record(obj: dict[str, object]) -> Record:
    """Validate one JSON-decoded interchange record.

    Args:
        obj: One line of an interchange file after ``json.loads``.

    Returns:
        The model of the record's kind.

    Raises:
        pydantic.ValidationError: The record is not valid; its errors name each field.
    """
    return _ADAPTER.validate_python(obj)


def parse_record_json(data: str | bytes) -> Record:
    """Validate one interchange record from its JSON text (faster than ``json.loads``).

    Raises:
        pydantic.ValidationError: The text is not JSON or not a valid record.
    """
    return _ADAPTER.validate_json(data)


def record_payload(record: RecordBase) -> dict[str, object]:
    """The record as its JSON object: the exact strings it was given, omitted fields absent.

    This is what is canonicalised (RFC 8785) and hashed downstream.
    """
    return record.model_dump(mode="json", exclude_none=True)


def domain_of(type_: str) -> Domain:
    """The domain of a record type: ``domain_of("finance.payment") == "finance"``.

    Raises:
        ValueError: ``type_`` is not a known record type.
    """
    try:
        domain, _ = _DOMAIN_KIND[type_]
    except KeyError:
        raise ValueError(f"unknown record type {type_!r}") from None
    return domain


def kind_of(type_: str) -> str:
    """The kind of a record type: ``kind_of("finance.payment") == "payment"``.

    Raises:
        ValueError: ``type_`` is not a known record type.
    """
    try:
        _, kind = _DOMAIN_KIND[type_]
    except KeyError:
        raise ValueError(f"unknown record type {type_!r}") from None
    return kind
