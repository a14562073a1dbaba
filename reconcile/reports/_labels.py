"""Names people read for the codes bfa works with: break codes, severities, workflow
states, fund accounts, insurances, record kinds, domains.

Codes stay what they are in JSON, CSV columns meant for machines and the ledger; a
person reads :func:`label` (the name in the current language) or :func:`code_label`
(a break code beside its name: ``DUPLICATE_PAYMENT 重复支付``, so a Chinese reader can
still search the documentation and the JSON by code). Each name is a gettext message
id marked with ``N_`` (``schemas/_i18n.py``); an unknown code is shown as itself.
"""

from __future__ import annotations

from schemas import N_, current_language, gettext

BREAK_CODES: dict[str, str] = {
    "ORPHAN_MOVEMENT": N_("movement without a business event"),
    "LEDGER_INTEGRITY": N_("ledger integrity failure"),
    "FIXITY_FAILURE": N_("voucher file changed or missing"),
    "SOD_CONFLICT": N_("conflict of duties"),
    "PAYMENT_AFTER_TERMINATION": N_("payment after termination"),
    "DUPLICATE_PAYMENT": N_("duplicate payment"),
    "PAYEE_MISMATCH": N_("payee account differs from the approved one"),
    "PAYMENT_WITHOUT_APPROVAL": N_("payment without approval"),
    "OVERPAYMENT": N_("paid above the approved amount"),
    "PAYMENT_AFTER_DEATH": N_("paid after death"),
    "DEATH_NOT_RECORDED": N_("death not recorded"),
    "TRANSFER_UNMATCHED": N_("transfer without its other side"),
    "CONTRIBUTION_WITHOUT_ENROLMENT": N_("contribution without enrolment"),
    "DUPLICATE_ENROLMENT": N_("enrolled in two regions"),
    "CERTIFICATION_OVERDUE": N_("eligibility certification overdue"),
    "UNSETTLED_EVENT": N_("event not settled"),
    "AMOUNT_MISMATCH": N_("amounts disagree"),
    "AMBIGUOUS_MATCH": N_("ambiguous match"),
    "RETURNED_PAYMENT": N_("payment returned by the bank"),
    "ACCOUNT_RULE_VIOLATION": N_("fund account rule broken"),
    "STATEMENT_BALANCE_BREAK": N_("bank statement does not add up"),
    "VOUCHER_DEFECT": N_("voucher fails the 四性 check"),
    "LATE_SETTLEMENT": N_("settled late"),
    "MISSING_VOUCHER": N_("voucher missing"),
}

SEVERITIES = {"high": N_("high"), "medium": N_("medium"), "low": N_("low")}

STATUSES = {
    "open": N_("open"),
    "assigned": N_("assigned"),
    "pending_approval": N_("pending approval"),
    "resolved": N_("resolved"),
    "new": N_("new"),
    "reopened": N_("reopened"),
}

FUND_ACCOUNTS = {
    "income": N_("income account"),
    "expenditure": N_("expenditure account"),
    "fiscal_special": N_("fiscal special account"),
}

INSURANCES = {
    "pension": N_("pension"),
    "medical": N_("medical"),
    "unemployment": N_("unemployment"),
    "work_injury": N_("work injury"),
    "maternity": N_("maternity"),
    "all": N_("all insurances"),
}

DOMAINS = {"business": N_("business"), "finance": N_("finance"), "archive": N_("archive")}

KINDS = {
    "enrollment": N_("enrolment"),
    "contribution_assessment": N_("contribution assessment"),
    "benefit_approval": N_("benefit approval"),
    "benefit_payment": N_("benefit payment"),
    "refund": N_("refund"),
    "transfer_out": N_("transfer out"),
    "transfer_in": N_("transfer in"),
    "termination": N_("termination"),
    "certification": N_("certification"),
    "collection": N_("collection"),
    "payment": N_("payment"),
    "return": N_("return"),
    "sweep": N_("sweep"),
    "transfer": N_("transfer"),
    "statement": N_("bank statement"),
    "fiscal_receipt": N_("fiscal e-receipt"),
    "bank_slip": N_("bank slip"),
    "accounting_voucher": N_("accounting voucher"),
    "application_form": N_("application form"),
    "approval_document": N_("approval document"),
    "bank_statement": N_("bank statement file"),
    "reconciliation_statement": N_("bank reconciliation statement"),
}

PROPERTIES = {
    "authenticity": N_("authenticity"),
    "integrity": N_("integrity"),
    "usability": N_("usability"),
    "security": N_("security"),
    "retention": N_("retention"),
}
"""The 四性 of DA/T 70 (and the retention a record declares)."""

ROLES = {
    "event": N_("event"), "allocated": N_("allocated"), "movement": N_("movement"),
    "paid": N_("paid"), "largest": N_("largest"), "returned": N_("returned"),
    "settled": N_("settled"), "opening": N_("opening"), "entries": N_("entries"),
    "closing": N_("closing"), "previous_closing": N_("previous closing"), "in": N_("in"),
    "out": N_("out"), "net": N_("net"), "voucher": N_("voucher"),
    "evidenced": N_("evidenced"), "statement": N_("statement"), "approved": N_("approved"),
    "amount": N_("amount"),  # an agency's own SQL rule's amount_fen (ADR 0036)
}
"""What each amount of a break is (its ``amounts`` keys)."""

REASONS = {
    "timing": N_("timing difference"), "bank_error": N_("bank error"),
    "data_entry": N_("data entry error"), "duplicate_import": N_("duplicate import"),
    "write_off": N_("write-off"), "other": N_("other"),
}
"""Reasons a resolution gives (``bfa breaks resolve --reason``)."""

ACTIONS = {
    "assign": N_("assign"), "resolve": N_("resolve"), "approve": N_("approve"),
    "reopen": N_("reopen"), "reveal": N_("reveal"), "forget": N_("forget"),
    "grant": N_("grant"), "revoke": N_("revoke"),
}
"""Actions of the workflow and of the access audit."""

PROBLEMS = {
    "against-signature": N_("the auditor's checkpoint does not verify"),
    "chain-broken": N_("hash chain broken"),
    "checkpoint-row": N_("stored checkpoint differs"),
    "checkpoint-signature": N_("checkpoint signature does not verify"),
    "derived-mismatch": N_("derived data differs from the entries"),
    "entry-missing": N_("entry missing"),
    "findings-mismatch": N_("stored findings differ"),
    "ingest-unrecorded": N_("batch not recorded"),
    "key-rotation": N_("key rotation not proven"),
    "leaf-format": N_("entry malformed"),
    "payload-changed": N_("record changed"),
    "root-mismatch": N_("Merkle root differs"),
    "rules-mismatch": N_("rules record not written by bfa"),
    "workflow-mismatch": N_("break states differ from the ledger"),
}
"""The problems ``bfa verify`` reports (FORMAT.md §6.6), by code."""

RETENTIONS = {"10y": N_("10 years"), "30y": N_("30 years"), "permanent": N_("permanent")}

_TABLES: dict[str, dict[str, str]] = {
    "code": BREAK_CODES, "severity": SEVERITIES, "status": STATUSES,
    "fund_account": FUND_ACCOUNTS, "insurance": INSURANCES, "domain": DOMAINS, "kind": KINDS,
    "property": PROPERTIES, "role": ROLES, "reason": REASONS, "action": ACTIONS,
    "retention": RETENTIONS, "problem": PROBLEMS,
}


def label(table: str, value: str | None) -> str:
    """The name of ``value`` in the current language: in English the code itself for
    codes people type (``fund_account``, ``insurance``, ``kind``, ``status``,
    ``severity``), in Chinese its Chinese name; break codes are named by
    :func:`code_label`. ``value`` itself when the table has no name for it."""
    text = "" if value is None else str(value)
    name = _TABLES[table].get(text)
    if name is None or (current_language() == "en" and table != "code"):
        return text
    return gettext(name)


def code_label(code: str, table: str = "code") -> str:
    """A break code (or another code of ``table``, a verification problem's say) beside its
    name in the current language (``DUPLICATE_PAYMENT 重复支付``); the code alone in
    English, where the code is already words."""
    name = _TABLES[table].get(code)
    if name is None or current_language() == "en":
        return code
    return f"{code} {gettext(name)}"
