"""Who acts: the authenticated identity recorded in every control entry (FORMAT.md §2.5).

The acting user of a control record is not a name the caller types. It is the identity
the system authenticated: on PostgreSQL the connection's ``session_user`` (each person
connects as their own database role), on SQLite the operating-system account running
``bfa`` (a private home has one; a group home has one per member). ``--user`` /
``BFA_USER`` remain a *label* — for a service account shared by scripts, say — recorded
beside the identity (member ``label``) when it says something else. Four-eyes compares
identities, never labels.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection


def os_account() -> str:
    """The operating-system account running this process (``uid:N`` without a name)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def authenticated(conn: Connection) -> str:
    """The identity behind ``conn``: PostgreSQL's ``session_user`` (the role that logged
    in, whatever ``SET ROLE`` did since), else the operating-system account."""
    if conn.dialect.name == "postgresql":
        return str(conn.exec_driver_sql("SELECT session_user").scalar_one())
    return os_account()


@dataclass(frozen=True, slots=True)
class Actor:
    """An authenticated identity and, when it says something else, the caller's label."""

    identity: str
    label: str | None = None

    def members(self) -> dict[str, Any]:
        """The members a control record holds: ``user`` and, if any, ``label``."""
        out: dict[str, Any] = {"user": self.identity}
        if self.label is not None:
            out["label"] = self.label
        return out

    def same_person(self, other: str | None) -> bool:
        """Whether ``other`` (an identity recorded earlier) is this actor's identity,
        compared without regard to letter case (``Li.Wei`` is ``li.wei``)."""
        return other is not None and other.casefold() == self.identity.casefold()


def actor(identity: str, label: str | None) -> Actor:
    """The actor; the label is kept only when it names someone else than the identity."""
    if label is not None and label.casefold() == identity.casefold():
        label = None
    return Actor(identity, label)


__all__ = ["Actor", "actor", "authenticated", "os_account"]
