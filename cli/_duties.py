"""Which duty each command needs (FORMAT.md §8.3), and the refusal that names it.

The database enforces duties (``ledger/_duties.py``); this table only lets a refused
command say which duty it needs. tests/test_docs.py keeps it and FORMAT.md's table equal,
and tests/cli/test_duties.py checks that every command ``bfa`` has is in it.
"""

from __future__ import annotations

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
    "key backup": "any (the keys are the home's)",
    "key restore": "any (the keys are the backup's)",
    "key rotate": OWNER,
    "reconcile": "officer or service",
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
    "statement approve": "officer (another than the one who asked)",
    "statement cancel": "officer",
    "statement withdrawals": ANY,
    "bank-account set": "any (the home's configuration)",
    "bank-account remove": "any (the home's configuration)",
    "bank-account list": ANY,
    "nightly": "service",
    "forget": "privacy",
    "archive audit": "officer or service",
    "archive restore": "officer or service",
    "archive check": "officer or service",
    "archive hold": "officer",
    "archive release": "officer",
    "archive due": ANY,
    "archive appraise": "officer",
    "archive dispose": "officer",
    "archive signoff": "officer or approver",
    "bundle export": "officer or service",
    "bundle verify": "none (offline: a bundle and a verifier key)",
    "proof verify": "none (offline: a proof and a verifier key)",
    "audit access": ANY,
    "db grant": OWNER,
    "demo": "none (its own SQLite ledger)",
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
        what = f"'bfa {path}' was refused by the database"
    elif duty == OWNER:
        what = f"'bfa {path}' must run as the owner of the ledger tables"
    else:
        what = f"'bfa {path}' needs the {duty} duty"
    grant = (f"; the ledger's owner grants it: bfa db grant ROLE --duty {duty.split()[0]} "
             "(if your role holds it already, the grants predate this bfa: the owner runs "
             "that grant again)" if duty not in (None, ANY, OWNER) else "")
    return f"{what} ({detail}){grant}"


__all__ = ["ANY", "COMMAND_DUTIES", "OWNER", "needed", "refusal"]
