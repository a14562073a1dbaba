"""Which duty each command needs (FORMAT.md §8.3), and the refusal that names it.

The database enforces duties (``ledger/_duties.py``); this table only lets a refused
command say which duty it needs. tests/test_docs.py keeps it and FORMAT.md's table equal,
and tests/cli/test_duties.py checks that every command ``bfa`` has is in it.
"""

from __future__ import annotations

from schemas import N_
from schemas import gettext as _

ANY = "any"
"""Reading: every duty may run it (auditors included)."""

OWNER = "owner"
"""The owner of the ledger tables (or a superuser), not a duty."""

COMMAND_DUTIES: dict[str, str] = {
    "init": OWNER,
    "status": ANY,
    "ingest": "officer",
    "checkpoint": "service",
    "verify": ANY,
    "prove": ANY,
    "show": ANY,
    "show --reveal": "privacy",
    "key export": ANY,
    "key backup": N_("any (the keys are the home's)"),
    "key restore": N_("any (the keys are the backup's)"),
    "key rotate": OWNER,
    "reconcile": N_("officer or service"),
    "compare": "privacy",
    "trace": ANY,
    "breaks list": ANY,
    "breaks show": ANY,
    "breaks assign": "officer",
    "breaks resolve": "officer",
    "breaks reopen": "officer",
    "breaks approve": "approver",
    "balance": ANY,
    "balance opening": "officer",
    "balance archive": "officer",
    "statement withdraw": "officer",
    "statement approve": N_("officer (another than the one who asked)"),
    "statement cancel": "officer",
    "statement withdrawals": ANY,
    "bank-account set": N_("any (the home's configuration)"),
    "bank-account remove": N_("any (the home's configuration)"),
    "bank-account list": ANY,
    "nightly": "service",
    "forget": "privacy",
    "archive audit": N_("officer or service"),
    "archive restore": N_("officer or service"),
    "archive check": N_("officer or service"),
    "archive hold": "officer",
    "archive release": "officer",
    "archive due": ANY,
    "archive appraise": "officer",
    "archive dispose": "officer",
    "archive signoff": N_("officer or approver"),
    "bundle export": N_("officer or service"),
    "bundle verify": N_("none (offline: a bundle and a verifier key)"),
    "proof verify": N_("none (offline: a proof and a verifier key)"),
    "audit access": ANY,
    "db grant": OWNER,
    "demo": N_("none (its own SQLite ledger)"),
}
"""Every command (``bfa --help`` order) and the duty it needs on PostgreSQL."""


def needed(path: str, reveal: bool = False) -> str | None:
    """The duty the command ``path`` (``"breaks approve"``) needs, None if unknown."""
    if path == "show" and reveal:
        path = "show --reveal"
    return COMMAND_DUTIES.get(path)


def refusal(path: str, reveal: bool, detail: str) -> str:
    """One line: which duty ``bfa PATH`` needs, what the database said, and who grants it."""
    duty = needed(path, reveal)
    if path == "show" and reveal:
        path = "show --reveal"
    if duty is None or duty == ANY:
        return _("'bfa {command}' was refused by the database ({detail})").format(
            command=path, detail=detail)
    if duty == OWNER:
        return _("'bfa {command}' must run as the owner of the ledger tables ({detail})").format(
            command=path, detail=detail)
    shown = _(duty) if " " in duty else duty  # a duty's own name is a code (--duty officer)
    return _("'bfa {command}' needs the {duty} duty ({detail}); the ledger's owner grants it: "
             "bfa db grant ROLE --duty {code} (if your role holds it already, the grants "
             "predate this bfa: the owner runs that grant again)").format(
        command=path, duty=shown, detail=detail, code=duty.split()[0])


__all__ = ["ANY", "COMMAND_DUTIES", "OWNER", "needed", "refusal"]
