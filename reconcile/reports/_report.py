"""The reconciliation report: breaks, expected items, summary, and its JSON form.

This module owns :class:`Break` (and :func:`integrity_break`), :class:`Expected`,
:class:`Report` and the severity of every code.

A :class:`Break` has a stable id: ``"BRK-"`` and the first 16 hex digits of
SHA-256 over its code, field and sorted record ids (or, for findings about a whole
account and month, a fixed key such as ``("income", "2026-11")``), so the same
finding keeps its id from one run to the next (and a ticket can refer to it).

Its ``evidence`` is the hex SHA-256 over its code, its amounts and the entry hashes
of the current versions of its records: it changes exactly when what the finding
rests on changes (a correction, a new allocation, another amount), which is what
the break workflow compares to keep a resolved break resolved.

Severity per code (:data:`SEVERITY`): ``high`` for money with no business event
behind it (``ORPHAN_MOVEMENT``), money paid where it must not be
(``PAYMENT_AFTER_TERMINATION``, ``DUPLICATE_PAYMENT``, ``PAYEE_MISMATCH``) and
integrity failures (``LEDGER_INTEGRITY``, ``FIXITY_FAILURE``) and one identity on both
sides of a control (``SOD_CONFLICT``); ``medium`` for money
that does not add up, cannot be attributed or sits on the wrong account
(``UNSETTLED_EVENT``, ``AMOUNT_MISMATCH``, ``AMBIGUOUS_MATCH``, ``RETURNED_PAYMENT``,
``ACCOUNT_RULE_VIOLATION``, ``STATEMENT_BALANCE_BREAK``); ``low`` for process
findings (``LATE_SETTLEMENT``, ``MISSING_VOUCHER``).

*Amount at risk* of a break (``amount_at_risk``): the unsettled part of an event,
the amount of an orphan or ambiguous movement, the absolute difference of a
mismatch, every payment beyond the first of a duplicate, the amount paid after a
termination or to the wrong account, the returned amount still unpaid, the amount
moved against an account's purpose (or the month's net on the income account), a
payment without an approval, the excess of an overpayment, an assessment without an
enrolment; zero for late settlements, missing vouchers, integrity failures and conflicts
of duties. The summary counts a record's once (:func:`at_risk_total`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconcile.matching._units import money
from reconcile.reports._labels import label
from schemas import gettext

Severity = Literal["high", "medium", "low"]

SEVERITY: dict[str, Severity] = {
    "ORPHAN_MOVEMENT": "high",
    "LEDGER_INTEGRITY": "high",
    "FIXITY_FAILURE": "high",
    "SOD_CONFLICT": "high",
    "PAYMENT_AFTER_TERMINATION": "high",
    "DUPLICATE_PAYMENT": "high",
    "PAYEE_MISMATCH": "high",
    "PAYMENT_WITHOUT_APPROVAL": "high",
    "OVERPAYMENT": "high",
    "PAYMENT_AFTER_DEATH": "high",
    "DEATH_NOT_RECORDED": "high",
    "TRANSFER_UNMATCHED": "high",
    "CONTRIBUTION_WITHOUT_ENROLMENT": "medium",
    "DUPLICATE_ENROLMENT": "medium",
    "CERTIFICATION_OVERDUE": "medium",
    "UNSETTLED_EVENT": "medium",
    "AMOUNT_MISMATCH": "medium",
    "AMBIGUOUS_MATCH": "medium",
    "RETURNED_PAYMENT": "medium",
    "ACCOUNT_RULE_VIOLATION": "medium",
    "STATEMENT_BALANCE_BREAK": "medium",
    "VOUCHER_DEFECT": "medium",
    "LATE_SETTLEMENT": "low",
    "MISSING_VOUCHER": "low",
}


@dataclass(frozen=True, slots=True)
class Msg:
    """A message for a person: an English template, which is its gettext id, and the
    parameters it is filled with (``str.format`` fields). The English text is what the
    ledger's digests and ``--json`` keep; :meth:`text` is what a reader sees."""

    template: str
    params: Mapping[str, str]

    def english(self) -> str:
        return self.template.format_map(self.params)

    def text(self) -> str:
        """In the current language (``schemas.set_language``)."""
        return render_message(self.template, self.params, self.english())


def msg(template: str, **params: object) -> Msg:
    """A :class:`Msg`; each parameter is kept as text (money as a ``money`` string)."""
    return Msg(template, {k: str(v) for k, v in params.items()})


MONEY_PARAMS = frozenset({
    "amount", "allocated", "event", "returned", "unpaid", "in_amount", "out_amount", "net",
    "opening", "entries", "sum", "closing", "book", "evidenced", "paid", "approved"})
"""Parameters that are money strings (``money``): shown with thousands separators."""


def grouped(amount: str) -> str:
    """A money string with thousands separators (``-1234567.80`` → ``-1,234,567.80``);
    anything that is not one, as it is."""
    sign, digits = ("-", amount[1:]) if amount.startswith("-") else ("", amount)
    whole, dot, part = digits.partition(".")
    if not whole.isdigit() or not whole.isascii() or (dot and not part.isdigit()):
        return amount
    return f"{sign}{int(whole):,}{dot}{part}"


def _shown(name: str, value: str) -> str:
    """A parameter as a reader sees it: money grouped, a rule's reason (a sentence of the
    catalog) translated, codes by their names in the reader's language."""
    if name in MONEY_PARAMS:
        return grouped(value)
    if name == "reason":
        return gettext(value)
    if name in ("kind", "insurance", "domain", "property"):
        return label(name, value)
    if name == "insurances":  # comma-separated
        return ", ".join(label("insurance", v) for v in value.split(", "))
    if name == "type":  # domain.kind
        return label("kind", value.partition(".")[2] or value)
    if name == "vouchers":
        return ", ".join(label("kind", v) for v in value.split(", "))
    return value


def render_message(template: str, params: Mapping[str, str], english: str) -> str:
    """``template`` translated and filled; ``english`` when there is no template (a
    message from before messages had one) or the translation does not fit its fields."""
    if not template:
        return english
    shown = {k: _shown(k, v) for k, v in params.items()}
    try:
        return gettext(template).format_map(shown)
    except (KeyError, IndexError, ValueError):
        return english


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def break_id(code: str, field: str, records: tuple[str, ...]) -> str:
    """``BRK-`` + 16 hex of SHA-256(code, field, sorted record ids), NUL-separated."""
    material = "\x00".join([code, field, *sorted(records)]).encode()
    return "BRK-" + hashlib.sha256(material).hexdigest()[:16]


class Break(_Model):
    """One finding: something is wrong as of the run's date."""

    id: str
    code: str
    severity: Severity
    records: tuple[str, ...]
    """Interchange ids involved, the record at fault first."""
    amounts: dict[str, str]
    """Money strings by role, e.g. ``{"event": "3456.78", "allocated": "3456.68"}``."""
    field: str
    """The interchange field at fault (``amount``, ``allocations``, ``refs`` ...)."""
    message: str
    """In English; :meth:`text` is the reader's language."""
    template: str = ""
    """The message's template (its gettext id) ..."""
    params: dict[str, str] = Field(default_factory=dict)
    """... and the values it was filled with: ``message == template.format(**params)``."""
    amount_at_risk: str = "0.00"
    """Money string: what this finding puts at risk (see the module docstring)."""
    evidence: str = ""
    """Hex SHA-256 over code, amounts and the current entry hashes of ``records``
    (filled in by ``run_reconcile``; :func:`evidence_digest`)."""
    at_risk_fen: int = Field(default=0, exclude=True)
    key: tuple[str, ...] | None = Field(default=None, exclude=True)
    """What the id covers instead of ``records`` (an account and month, a ledger entry),
    or None when it covers the records; kept with the workflow state (FORMAT.md §2.5)."""
    status: str | None = None
    """Workflow state (``open``, ``assigned``, ``pending_approval``, ``resolved``), filled in
    by ``reconcile.apply_states``; None when the report did not go through the workflow."""
    assignee: str | None = None
    occurred_on: str | None = Field(default=None, exclude=True)
    """The earliest ``occurred_at`` date of its records (what the aging counts from);
    filled in by ``run_reconcile``, not part of the report's JSON."""

    @classmethod
    def make(cls, code: str, records: tuple[str, ...], amounts: dict[str, int], field: str,
             message: Msg | str, at_risk_fen: int = 0, key: tuple[str, ...] | None = None,
             severity: Severity | None = None, entry_hashes: list[str] | None = None,
             occurred_on: str | None = None) -> Break:
        """A break; its id covers ``key`` instead of ``records`` when one is given; with
        ``entry_hashes`` (those of its records), its ``evidence`` too. ``severity``: this
        break's, when its code's varies (``TRANSFER_UNMATCHED``: medium when no money
        moved); never above the code's (:data:`SEVERITY`), which decides four eyes. A code
        of an agency's own SQL rule has no entry there: its severity is the rule's (its
        rules file says it; four eyes follow the ledger's rules records, ADR 0036)."""
        shown = {k: money(v) for k, v in amounts.items()}
        # words with no template (a caller of the library's own) are shown as they are
        english = message if isinstance(message, str) else message.english()
        message = Msg("", {}) if isinstance(message, str) else message
        return cls(id=break_id(code, field, records if key is None else key), code=code,
                   severity=severity or SEVERITY[code], records=records, amounts=shown, field=field,
                   message=english, template=message.template, params=dict(message.params),
                   amount_at_risk=money(at_risk_fen), at_risk_fen=at_risk_fen,
                   key=key, occurred_on=occurred_on,
                   evidence="" if entry_hashes is None else _digest(
                       code, field, shown, records, english, entry_hashes))

    def text(self) -> str:
        """The message in the reader's language."""
        return render_message(self.template, self.params, self.message)

    def with_evidence(self, entry_hashes: list[str]) -> Break:
        """This break with ``evidence`` computed over the given entry hashes."""
        return self.model_copy(update={"evidence": evidence_digest(self, entry_hashes)})


def evidence_digest(b: Break, entry_hashes: list[str]) -> str:
    """SHA-256 over code, field, sorted ``role=amount`` pairs, the message when there are
    no records, and the entry hashes (in record order)."""
    return _digest(b.code, b.field, b.amounts, b.records, b.message, entry_hashes)


def _digest(code: str, field: str, amounts: dict[str, str], records: tuple[str, ...],
            message: str, entry_hashes: list[str]) -> str:
    parts = [code, field, *(f"{k}={v}" for k, v in sorted(amounts.items()))]
    if not records:
        parts.append(message)
    material = "\x00".join([*parts, "", *entry_hashes]).encode()
    return hashlib.sha256(material).hexdigest()


def integrity_break(message: Msg | str, seq: int | None) -> Break:
    """A ``LEDGER_INTEGRITY`` break (the nightly run's verification failed).

    Args:
        message: what failed (hash chain, Merkle tree or checkpoint signature).
        seq: the first entry found bad, or ``None`` when the failure is not one entry's.

    The id is stable per ``seq`` (``field`` is ``entry`` or ``ledger``); the evidence
    covers the message, so another failure at the same place reopens a resolution.
    """
    field = "ledger" if seq is None else "entry"
    key = () if seq is None else (f"seq:{seq}",)
    if isinstance(message, str):  # a verification problem, worded by the ledger
        message = msg("{detail}", detail=message)
    b = Break.make("LEDGER_INTEGRITY", (), {}, field, message, 0, key=key)
    return b.with_evidence([] if seq is None else [str(seq)])


def derived_break(table: str, seq: int, record: str, part: str, message: str) -> Break:
    """A ``LEDGER_INTEGRITY`` break: a row of the reconciler's derived tables differed from
    what the entries give (and the tables were rebuilt from the entries). Its id is
    stable per table, entry, record and column (``part``); its evidence covers the
    message."""
    b = Break.make("LEDGER_INTEGRITY", (), {}, "derived",
                   msg("{detail}; the derived tables were rebuilt from the entries",
                       detail=message), 0, key=("derived", table, str(seq), record, part))
    return b.with_evidence([str(seq)])


def workflow_break(bid: str, message: str) -> Break:
    """A ``LEDGER_INTEGRITY`` break: the workflow state of break ``bid`` differed from its
    ``control.break`` entries (and was restored from them). Its id is stable per break;
    its evidence covers the message."""
    b = Break.make("LEDGER_INTEGRITY", (), {}, "workflow", msg("{detail}", detail=message), 0,
                   key=("workflow", bid))
    return b.with_evidence([bid])


class Expected(_Model):
    """Not (yet) a break: still inside its window on the run's date."""

    code: str
    """The break it becomes if nothing changes by ``until``."""
    records: tuple[str, ...]
    amounts: dict[str, str]
    field: str
    until: str
    """Last day of the window (``YYYY-MM-DD``)."""
    message: str
    template: str = ""
    params: dict[str, str] = Field(default_factory=dict)

    def text(self) -> str:
        """The message in the reader's language, with the end of its window."""
        english = self.message.rsplit(" (window until", 1)[0]
        what = render_message(self.template, self.params, english)
        return what + gettext(" (window until {until})").format(until=self.until)


class RunInfo(_Model):
    as_of: str
    started_at: str
    finished_at: str
    ledger_size: int
    decoded: int
    """Entries decoded into the derived tables by this run (incremental refresh)."""
    backend: str
    rules: dict[str, Any]
    mode: str = "full"
    """``full`` (every item re-checked) or ``incremental``
    (see ``reconcile.matching._incremental``)."""
    rechecked: int = 0
    """Incremental runs: events, movements, records and vouchers re-checked."""
    look_back: bool = False
    """A run for an earlier day than the last tracked run's: it changed no break state."""
    not_judged: int = 0
    """Current records that occurred after the as-of day: not judged (a cut-off)."""
    rules_digest: str = ""
    """The digest of ``rules``: the ledger's ``control.rules`` record ``rules-<digest>``
    holds them (FORMAT.md §2.5); empty in reports made before it was recorded."""


class Summary(_Model):
    breaks: int
    by_code: dict[str, int]
    amount_at_risk: str
    """What the breaks not resolved put at risk (all of them before the workflow ran),
    each record at fault counted once (:func:`at_risk_total`)."""
    expected: int
    amount_at_risk_resolved: str = "0.00"
    """What the resolved breaks put at risk (shown apart: they are dealt with)."""


def at_risk_total(breaks: Iterable[Break]) -> int:
    """The amount at risk of ``breaks`` in fen, a record's counted once: a record may carry
    several findings (a payment without approval, after a termination and to another
    account), so breaks are grouped by their record at fault (the first of ``records``)
    and each group adds its largest amount; a break without records adds its own."""
    largest: dict[str, int] = {}
    alone = 0
    for b in breaks:
        if b.records:
            largest[b.records[0]] = max(largest.get(b.records[0], 0), b.at_risk_fen)
        else:
            alone += b.at_risk_fen
    return alone + sum(largest.values())


class Report(_Model):
    """What ``run_reconcile`` returns; :meth:`to_json` is the ``--json`` form."""

    run: RunInfo
    summary: Summary
    breaks: tuple[Break, ...]
    expected: tuple[Expected, ...]

    @classmethod
    def build(cls, run: RunInfo, breaks: list[Break], expected: list[Expected]) -> Report:
        unique = {b.id: b for b in breaks}
        ordered = sorted(unique.values(), key=lambda b: (b.code, b.records, b.id))
        counts = Counter(b.code for b in ordered)
        summary = Summary(
            breaks=len(ordered), by_code=dict(sorted(counts.items())),
            amount_at_risk=money(at_risk_total(ordered)), expected=len(expected))
        exp = sorted(expected, key=lambda x: (x.code, x.records))
        return cls(run=run, summary=summary, breaks=tuple(ordered), expected=tuple(exp))

    @property
    def clean(self) -> bool:
        """No break left to work: every break (if any) is resolved."""
        return all(b.status == "resolved" for b in self.breaks)

    @property
    def integrity_failed(self) -> bool:
        """The run found the ledger's own state changed behind its back (a
        ``LEDGER_INTEGRITY`` break): exit 3, and a nightly signs nothing."""
        return any(b.code == "LEDGER_INTEGRITY" for b in self.breaks)

    def codes(self) -> Counter[str]:
        return Counter(b.code for b in self.breaks)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
