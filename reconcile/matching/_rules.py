"""Reconciliation rules: what each kind needs, windows, tolerance — defaults and the TOML file.

This module owns :class:`Rules` (the INTERCHANGE "What consistency means" defaults are
built in) and :func:`load_rules`, which reads an agency's rules file (TOML). A file only
overrides what it names; unknown keys and bad values are refused with an
:class:`~ledger._errors.InputError` naming the file and the key. A commented example
is ``reconcile/rules.example.toml``.

File layout (every table and key optional)::

    [tolerance]            # amounts this close count as equal (default: exact)
    absolute = "0.00"      # yuan, a money string
    percent = "0"          # percent of the expected amount, up to 4 decimals

    [matching]             # heuristic matching of unallocated movements
    days_before = 60       # value date at most this many days before the due date
    days_after = 30        # ... and at most this many days after it

    [windows]              # days an item is *expected* before it becomes a break
    settlement_days = 30   # default for kinds without their own
    late_days = 30         # LATE_SETTLEMENT: value date this many days after the due date
    voucher_days = 30      # MISSING_VOUCHER after occurred_at + this
    orphan_days = 30       # ORPHAN_MOVEMENT after value_date + this
    income_netting_days = 0  # the income account must net to zero by month end + this

    [finance]
    vouchers = ["accounting_voucher"]   # every finance movement needs these

    [kinds.contribution_assessment]     # one table per business kind
    movements = ["collection"]          # finance kinds that settle it (money kinds only)
    vouchers = ["fiscal_receipt"]       # voucher kinds it needs
    settlement_days = 30                # overrides windows.settlement_days
    late_days = 30                      # overrides windows.late_days

    [[sql_rules]]                       # an agency's own rule (ADR 0036), any number
    code = "CUSTOM_LARGE_PAYMENT"       # CUSTOM_ and capitals, digits, underscores
    severity = "high"                   # high, medium or low
    description = "..."                 # what a finding means, for the report
    query = "SELECT record_id FROM bfa_v_events WHERE ..."   # over the rule views only
    timeout_ms = 10000                  # optional; the query's time limit

Tolerance applies to settlement (an event whose allocations are within it is settled),
to allocations against their movement, and to vouchers against what they evidence.
Heuristic matching stays exact (INTERCHANGE: "the amount is equal").
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ledger import InputError
from reconcile.matching._custom import (
    CODE_PATTERN,
    DEFAULT_TIMEOUT_MS,
    MAX_TIMEOUT_MS,
    SqlRule,
    query_problem,
)
from reconcile.matching._units import fen
from schemas import gettext as _

RULESET_VERSION = "bfa-rules/2026.12.3"
"""Names the rules this reconciler implements (which codes, judged how). A finding re-derived
under another version is not compared (a proof bundle states the version it was made
with, FORMAT.md §12.3); change it whenever a rule's meaning changes. ``2026.12.2``: the
entitlement rules (``PAYMENT_WITHOUT_APPROVAL``, ``OVERPAYMENT``,
``CONTRIBUTION_WITHOUT_ENROLMENT``, ``DUPLICATE_ENROLMENT``), ``entitlement.one_off_benefits``
and ``windows.transfer_days``. ``2026.12.3``: ``TRANSFER_UNMATCHED``, ``PAYMENT_AFTER_DEATH``,
``DEATH_NOT_RECORDED``, ``CERTIFICATION_OVERDUE`` and their ``entitlement`` keys."""

DEFAULT_RULES: Mapping[str, int] = {
    "settlement_days": 30,
    "late_days": 30,
    "match_days_before": 60,
    "match_days_after": 30,
    "voucher_days": 30,
    "orphan_days": 30,
    "income_netting_days": 0,
    "transfer_days": 90,
}
"""The flat window defaults of INTERCHANGE "What consistency means", as a dict."""

BUSINESS_KINDS = ("enrollment", "contribution_assessment", "benefit_approval", "benefit_payment",
                  "refund", "transfer_out", "transfer_in", "termination", "certification")
MONEY_KINDS = frozenset({"contribution_assessment", "benefit_payment", "refund", "transfer_out",
                         "transfer_in"})
"""Business kinds that carry an ``amount`` (only these may need movements)."""
SETTLING_KINDS = ("collection", "payment", "refund", "transfer")
"""Finance kinds that settle business events (``return`` and ``sweep`` do not)."""
MOVEMENT_KINDS = frozenset({*SETTLING_KINDS, "return", "sweep"})
VOUCHER_KINDS = ("fiscal_receipt", "bank_slip", "accounting_voucher", "application_form",
                 "approval_document")


ONE_OFF_BENEFITS = ("back_pay", "funeral_grant", "survivor_pension")
"""The default one-off benefits: 调待补发, 丧葬补助金, 抚恤金."""

INSURANCES = ("pension", "medical", "unemployment", "work_injury", "maternity")
CERTIFIED_INSURANCES = ("pension",)
"""Whose recurring payments need a certification (资格认证) within the window: pensioners."""
CERTIFICATION_MONTHS = 12


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class KindRule(_Model):
    """What one business kind needs."""

    movements: tuple[str, ...] = ()
    vouchers: tuple[str, ...] = ()
    settlement_days: int | None = Field(default=None, ge=0)
    late_days: int | None = Field(default=None, ge=0)


DEFAULT_KINDS: dict[str, KindRule] = {
    "contribution_assessment": KindRule(movements=("collection",), vouchers=("fiscal_receipt",)),
    "benefit_payment": KindRule(movements=("payment",), vouchers=("bank_slip",)),
    "refund": KindRule(movements=("refund",), vouchers=("accounting_voucher",)),
    "transfer_out": KindRule(movements=("transfer",), vouchers=("approval_document",)),
    "enrollment": KindRule(vouchers=("application_form",)),
    "benefit_approval": KindRule(vouchers=("approval_document",)),
}


class Rules(_Model):
    """Windows (days), tolerance and requirements the reconciler judges by."""

    settlement_days: int = Field(default=DEFAULT_RULES["settlement_days"], ge=0)
    """An unsettled event is *expected* until this many days after its due date
    (events without one: their ``occurred_at`` date); after that, ``UNSETTLED_EVENT``.
    A kind's own ``settlement_days`` overrides it."""
    late_days: int = Field(default=DEFAULT_RULES["late_days"], ge=0)
    """A movement settling an event with a due date, with a value date more than this
    many days after it, is ``LATE_SETTLEMENT`` (a kind's own ``late_days`` overrides)."""
    match_days_before: int = Field(default=DEFAULT_RULES["match_days_before"], ge=0)
    match_days_after: int = Field(default=DEFAULT_RULES["match_days_after"], ge=0)
    voucher_days: int = Field(default=DEFAULT_RULES["voucher_days"], ge=0)
    orphan_days: int = Field(default=DEFAULT_RULES["orphan_days"], ge=0)
    income_netting_days: int = Field(default=DEFAULT_RULES["income_netting_days"], ge=0)
    transfer_days: int = Field(default=DEFAULT_RULES["transfer_days"], ge=0)
    """Days around a second enrolment in which a transfer between the two regions explains
    the overlap (``DUPLICATE_ENROLMENT``; until then it is expected)."""
    tolerance_fen: int = Field(default=0, ge=0)
    """Absolute amount tolerance in fen."""
    tolerance_ppm: int = Field(default=0, ge=0, le=1_000_000)
    """Relative tolerance in millionths of the expected amount (``percent`` × 10 000)."""
    finance_vouchers: tuple[str, ...] = ("accounting_voucher",)
    kinds: dict[str, KindRule] = Field(default_factory=lambda: dict(DEFAULT_KINDS))
    one_off_benefits: tuple[str, ...] = ONE_OFF_BENEFITS
    """``benefit`` codes of one-off payments (INTERCHANGE v1.1): they need an approval of
    the person and insurance but not one in force for their period, and are not counted
    against the approved monthly amount. Any other payment is the recurring benefit."""
    certification_months: int = Field(default=CERTIFICATION_MONTHS, ge=1, le=1200)
    """A certification (or the approval's ``start_period``) in month ``c`` covers the
    periods ``c`` to ``c + certification_months - 1`` (``CERTIFICATION_OVERDUE``)."""
    certified_insurances: tuple[str, ...] = CERTIFIED_INSURANCES
    """Insurances whose recurring benefit needs a certification within the window."""
    transfer_regions: tuple[str, ...] = ()
    """The regions ``TRANSFER_UNMATCHED`` looks for the other side of a transfer in; empty:
    every region of which the ledger holds a record."""
    sql_rules: tuple[SqlRule, ...] = ()
    """An agency's own rules, as SQL over the rule views (:mod:`reconcile.matching._custom`);
    part of :meth:`describe`, and so of the rules' digest, only when there are any."""

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any] | None = None) -> Rules:
        """Defaults with flat ``overrides`` applied; unknown keys are refused."""
        return cls.model_validate({**DEFAULT_RULES, **(overrides or {})})

    # -- derived views --------------------------------------------------------------
    def settles(self) -> dict[str, str]:
        """Finance kind -> the business kind it settles."""
        return {m: k for k, r in self.kinds.items() for m in r.movements}

    def money_kinds(self) -> tuple[str, ...]:
        """Business kinds that need a movement (they are checked for settlement)."""
        return tuple(sorted(k for k, r in self.kinds.items() if r.movements))

    def settlement_for(self, kind: str) -> int:
        r = self.kinds.get(kind)
        return self.settlement_days if r is None or r.settlement_days is None else r.settlement_days

    def late_for(self, kind: str) -> int:
        r = self.kinds.get(kind)
        return self.late_days if r is None or r.late_days is None else r.late_days

    def voucher_requirements(self) -> list[tuple[str, str, str]]:
        """``(domain, kind, voucher kind)`` for every requirement."""
        out = [("business", k, v) for k, r in sorted(self.kinds.items()) for v in r.vouchers]
        out += [("finance", m, v) for m in sorted(MOVEMENT_KINDS) for v in self.finance_vouchers]
        return out

    def within(self, diff_fen: int, expected_fen: int) -> bool:
        """Is ``|diff|`` inside the tolerance for an expected amount? (Python twin of the SQL.)"""
        d = abs(diff_fen)
        return d <= self.tolerance_fen or d * 1_000_000 <= abs(expected_fen) * self.tolerance_ppm

    def describe(self) -> dict[str, Any]:
        """The rules as plain JSON-ready data (the report's ``run.rules``). ``sql_rules``
        only when there are any: rules without them keep the digest they always had."""
        out = self.model_dump(mode="json")
        if not self.sql_rules:
            del out["sql_rules"]
        return out


# -- the TOML file ----------------------------------------------------------------------

_TOP = {"tolerance", "matching", "windows", "finance", "kinds", "entitlement", "sql_rules"}
_WINDOWS = ("settlement_days", "late_days", "voucher_days", "orphan_days", "income_netting_days",
            "transfer_days")


class _File:
    """Reads one parsed TOML document, failing with the file and the dotted key."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data

    def fail(self, key: str, message: str, **params: object) -> InputError:
        """``message``: a whole translated message naming ``{path}``, ``{key}`` and
        ``params``."""
        return InputError(message.format(path=self.path, key=repr(key), **params))

    def table(self, parent: Mapping[str, Any], name: str, key: str,
              allowed: set[str] | tuple[str, ...] | None) -> Mapping[str, Any]:
        value = parent.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(key, _("{path}: rules key {key}: must be a table"))
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    raise self.fail(f"{key}.{k}", _("{path}: rules key {key}: unknown key "
                                                     "(allowed: {allowed})"),
                                    allowed=", ".join(sorted(allowed)))
        return value

    def days(self, table: Mapping[str, Any], name: str, key: str) -> int | None:
        if name not in table:
            return None
        v = table[name]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 36_500:
            raise self.fail(key, _("{path}: rules key {key}: must be a whole number of days "
                                   "from 0 to 36500, not {value}"), value=repr(v))
        return v

    def kinds_list(self, table: Mapping[str, Any], name: str, key: str,
                   allowed: tuple[str, ...]) -> tuple[str, ...] | None:
        if name not in table:
            return None
        v = table[name]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.fail(key, _("{path}: rules key {key}: must be a list of strings"))
        for x in v:
            if x not in allowed:
                raise self.fail(key, _("{path}: rules key {key}: unknown kind {kind} "
                                       "(allowed: {allowed})"),
                                kind=repr(x), allowed=", ".join(allowed))
        if len(set(v)) != len(v):
            raise self.fail(key, _("{path}: rules key {key}: lists a kind twice"))
        return tuple(v)


def load_rules(path: Path | str) -> Rules:
    """Read a rules file (TOML) over the built-in defaults.

    Args:
        path: the file; only what it names overrides the defaults.

    Returns:
        The :class:`Rules`.

    Raises:
        InputError: the file cannot be read or parsed, names an unknown key, or holds a
            bad value; the message names the file and the dotted key.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = tomllib.load(f)
    except OSError as err:
        raise InputError(_("{path}: cannot read the rules file: {error}").format(
            path=p, error=err.strerror or err)) from err
    except tomllib.TOMLDecodeError as err:
        raise InputError(_("{path}: not valid TOML: {error}").format(path=p, error=err)) from err
    except UnicodeDecodeError as err:  # TOML is UTF-8 (toml.io v1.0.0, "Spec")
        if err.object[:2] in (b"\xff\xfe", b"\xfe\xff"):
            text = _("{path}: not valid TOML: not UTF-8 at byte {byte} (a UTF-16 byte-order "
                     "mark); save the file as UTF-8")
        else:
            text = _("{path}: not valid TOML: not UTF-8 at byte {byte}; save the file as UTF-8")
        raise InputError(text.format(path=p, byte=err.start)) from err
    return rules_from_toml(p, data)


def rules_from_toml(path: Path, data: dict[str, Any]) -> Rules:
    """:func:`load_rules` on an already parsed document (``path`` names it in errors)."""
    f = _File(path, data)
    for k in data:
        if k not in _TOP:
            raise f.fail(k, _("{path}: rules key {key}: unknown key (allowed: {allowed})"),
                         allowed=", ".join(sorted(_TOP)))
    values: dict[str, Any] = dict(DEFAULT_RULES)

    tol = f.table(data, "tolerance", "tolerance", {"absolute", "percent"})
    if "absolute" in tol:
        values["tolerance_fen"] = _absolute(f, tol["absolute"])
    if "percent" in tol:
        values["tolerance_ppm"] = _percent(f, tol["percent"])

    match = f.table(data, "matching", "matching", {"days_before", "days_after"})
    for name in ("days_before", "days_after"):
        d = f.days(match, name, f"matching.{name}")
        if d is not None:
            values[f"match_{name}"] = d

    win = f.table(data, "windows", "windows", _WINDOWS)
    for name in _WINDOWS:
        d = f.days(win, name, f"windows.{name}")
        if d is not None:
            values[name] = d

    fin = f.table(data, "finance", "finance", {"vouchers"})
    fv = f.kinds_list(fin, "vouchers", "finance.vouchers", VOUCHER_KINDS)
    if fv is not None:
        values["finance_vouchers"] = fv

    kinds = dict(DEFAULT_KINDS)
    ktab = f.table(data, "kinds", "kinds", BUSINESS_KINDS)
    seen: dict[str, str] = {}
    for kind in BUSINESS_KINDS:
        if kind not in ktab:
            continue
        key = f"kinds.{kind}"
        t = f.table(ktab, kind, key, {"movements", "vouchers", "settlement_days", "late_days"})
        base = kinds.get(kind, KindRule())
        movs = f.kinds_list(t, "movements", f"{key}.movements", SETTLING_KINDS)
        if movs and kind not in MONEY_KINDS:
            raise f.fail(f"{key}.movements", _("{path}: rules key {key}: {kind} carries no "
                                               "amount, so no movement settles it"), kind=kind)
        vouchers = f.kinds_list(t, "vouchers", f"{key}.vouchers", VOUCHER_KINDS)
        kinds[kind] = KindRule(
            movements=base.movements if movs is None else movs,
            vouchers=base.vouchers if vouchers is None else vouchers,
            settlement_days=f.days(t, "settlement_days", f"{key}.settlement_days"),
            late_days=f.days(t, "late_days", f"{key}.late_days"),
        )
    for kind, r in sorted(kinds.items()):
        for m in r.movements:
            if m in seen and seen[m] != kind:
                raise f.fail(f"kinds.{kind}.movements",
                             _("{path}: rules key {key}: {movement} already settles {kind}; a "
                               "finance kind settles one kind"), movement=repr(m), kind=seen[m])
            seen[m] = kind
    values["kinds"] = kinds
    ent = f.table(data, "entitlement", "entitlement", set(_ENTITLEMENT))
    if "one_off_benefits" in ent:
        values["one_off_benefits"] = _codes(f, ent["one_off_benefits"],
                                            "entitlement.one_off_benefits")
    if "certification_months" in ent:
        v = ent["certification_months"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1200:
            raise f.fail("entitlement.certification_months",
                         _("{path}: rules key {key}: must be a whole number of months from 1 "
                           "to 1200, not {value}"), value=repr(v))
        values["certification_months"] = v
    if "certified_insurances" in ent:
        v = ent["certified_insurances"]
        if (not isinstance(v, list) or not all(isinstance(x, str) and x in INSURANCES for x in v)
                or len(set(v)) != len(v)):
            raise f.fail("entitlement.certified_insurances",
                         _("{path}: rules key {key}: must be a list of insurances, each once "
                           "(allowed: {allowed}), not {value}"),
                         allowed=", ".join(INSURANCES), value=repr(v))
        values["certified_insurances"] = tuple(v)
    if "transfer_regions" in ent:
        values["transfer_regions"] = _regions(f, ent["transfer_regions"],
                                              "entitlement.transfer_regions")
    if "sql_rules" in data:
        values["sql_rules"] = _sql_rules(f, data["sql_rules"])
    return Rules.model_validate(values)


_ENTITLEMENT = ("one_off_benefits", "certification_months", "certified_insurances",
                "transfer_regions")


def _regions(f: _File, v: object, key: str) -> tuple[str, ...]:
    """A list of region codes (six digits, as INTERCHANGE's ``region``), each once."""
    if not isinstance(v, list) or not all(
            isinstance(x, str) and len(x) == 6 and x.isascii() and x.isdigit() for x in v):
        raise f.fail(key, _('{path}: rules key {key}: must be a list of six-digit region codes '
                            'such as ["110000", "440300"], not {value}'), value=repr(v))
    if len(set(v)) != len(v):
        raise f.fail(key, _("{path}: rules key {key}: names a region twice"))
    return tuple(sorted(v))


_SQL_KEYS = ("code", "severity", "description", "query", "timeout_ms")


def _sql_rules(f: _File, v: object) -> tuple[SqlRule, ...]:
    """The ``[[sql_rules]]`` tables: each names its code, severity, description and query."""
    from reconcile.reports._report import SEVERITY

    if not isinstance(v, list):
        raise f.fail("sql_rules", _("{path}: rules key {key}: must be an array of tables "
                                    "([[sql_rules]])"))
    out: list[SqlRule] = []
    for i, item in enumerate(v, 1):
        key = f"sql_rules[{i}]"
        t = f.table({"t": item}, "t", key, set(_SQL_KEYS))
        for name in ("code", "severity", "description", "query"):
            if not isinstance(t.get(name), str):
                raise f.fail(f"{key}.{name}", _("{path}: rules key {key}: required, a text"))
        code = t["code"]
        if not CODE_PATTERN.fullmatch(code):
            raise f.fail(f"{key}.code", _("{path}: rules key {key}: {value} is not a rule code: "
                                          "CUSTOM_ and then 1 to 33 capitals, digits or "
                                          "underscores"), value=repr(code))
        if code in SEVERITY or code in {r.code for r in out}:
            raise f.fail(f"{key}.code", _("{path}: rules key {key}: the code {value} is taken"),
                         value=repr(code))
        if t["severity"] not in ("high", "medium", "low"):
            raise f.fail(f"{key}.severity", _("{path}: rules key {key}: must be high, medium "
                                              "or low, not {value}"), value=repr(t["severity"]))
        desc = t["description"]
        if not 0 < len(desc) <= 200 or not desc.isprintable() or desc != desc.strip():
            raise f.fail(f"{key}.description", _("{path}: rules key {key}: 1 to 200 printable "
                                                 "characters on one line"))
        why = query_problem(t["query"]) if len(t["query"]) <= 20_000 else _("longer than "
                                                                           "20000 characters")
        if why is not None:
            raise f.fail(f"{key}.query", _("{path}: rules key {key} (rule {code}): {reason}"),
                         code=code, reason=why)
        ms = t.get("timeout_ms", DEFAULT_TIMEOUT_MS)
        if isinstance(ms, bool) or not isinstance(ms, int) or not 0 < ms <= MAX_TIMEOUT_MS:
            raise f.fail(f"{key}.timeout_ms", _("{path}: rules key {key}: a whole number of "
                                                "milliseconds from 1 to {most}, not {value}"),
                         most=MAX_TIMEOUT_MS, value=repr(ms))
        out.append(SqlRule(code=code, severity=t["severity"], description=desc,
                           query=t["query"], timeout_ms=ms))
    return tuple(out)


def _codes(f: _File, v: object, key: str) -> tuple[str, ...]:
    """A list of benefit codes (short texts, as INTERCHANGE's ``benefit``), each once."""
    if not isinstance(v, list):
        raise f.fail(key, _('{path}: rules key {key}: must be a list of benefit codes such as '
                            '["funeral_grant", "back_pay"], not {value}'), value=repr(v))
    for x in v:
        if not (isinstance(x, str) and 0 < len(x) <= 128 and x == x.strip()
                and x.isprintable()):
            raise f.fail(key, _("{path}: rules key {key}: {value} is not a benefit code (1 to "
                                "128 characters, no spaces at either end)"), value=repr(x))
    twice = sorted({x for x in v if v.count(x) > 1})
    if twice:
        raise f.fail(key, _("{path}: rules key {key}: names {code} twice"), code=repr(twice[0]))
    return tuple(sorted(v))


def _absolute(f: _File, v: object) -> int:
    if not isinstance(v, str):
        raise f.fail("tolerance.absolute", _('{path}: rules key {key}: must be a money string '
                                             'such as "0.50", not {value}'), value=repr(v))
    try:
        n = fen(v)
    except (ValueError, InvalidOperation):
        raise f.fail("tolerance.absolute", _("{path}: rules key {key}: {value} is not an "
                                             "amount exact to the fen"), value=repr(v)) from None
    if n < 0 or "." not in v or len(v.split(".")[1]) != 2:
        raise f.fail("tolerance.absolute", _('{path}: rules key {key}: {value}: a non-negative '
                                             'amount with two decimals, e.g. "0.50"'),
                     value=repr(v))
    return n


def _percent(f: _File, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise f.fail("tolerance.percent", _("{path}: rules key {key}: must be a number of "
                                            "percent, not {value}"), value=repr(v))
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise f.fail("tolerance.percent", _("{path}: rules key {key}: {value} is not a number"),
                     value=repr(v)) from None
    if not d.is_finite() or d < 0 or d > 100:
        raise f.fail("tolerance.percent", _("{path}: rules key {key}: {value} must be between "
                                            "0 and 100"), value=repr(v))
    ppm = d * 10_000
    if ppm != ppm.to_integral_value():
        raise f.fail("tolerance.percent", _("{path}: rules key {key}: {value} has more than 4 "
                                            "decimals"), value=repr(v))
    return int(ppm)
