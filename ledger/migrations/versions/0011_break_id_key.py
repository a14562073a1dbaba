"""``wf_break_state.id_key``: what a break's id covers when it names no records.

A break's id is ``break_id(code, field, records)``, or, for a finding about an account and
month or the ledger itself, ``break_id(code, field, key)``. Checking a row's code against
its id (so that nobody can turn a high-severity break into one that needs no four-eyes
approval) needs that key; this column keeps it (JSON array text, NULL for breaks whose id
covers their records). Rows written before it get their key from their message, where it
is stated: the month of an income account's netting finding, the entry of a ledger
integrity finding; a row whose key cannot be found keeps NULL, and the next reconciliation
writes the key of every break it reports.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import hashlib
import json
import re

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _break_id(code: str, field: str, parts: list[str]) -> str:
    # the formula of FORMAT.md §2.5, written out: a migration does not import the code
    material = "\x00".join([code, field, *sorted(parts)]).encode()
    return "BRK-" + hashlib.sha256(material).hexdigest()[:16]


def _key_of(break_id: str, code: str, field: str, message: str) -> list[str] | None:
    candidates: list[list[str]] = [[]]
    month = re.search(r"income account (\d{4}-\d{2})", message)
    if month:
        candidates.append(["income", month.group(1)])
    entry = re.search(r"\(entry (\d+)\)", message)
    if entry:
        candidates.append([f"seq:{entry.group(1)}"])
    for key in candidates:
        if _break_id(code, field, key) == break_id:
            return key
    return None


def upgrade() -> None:
    bind = op.get_bind()
    columns = {c["name"] for c in sa.inspect(bind).get_columns("wf_break_state")}
    if "id_key" in columns:  # tests roll revisions back and upgrade again
        return
    op.add_column("wf_break_state", sa.Column("id_key", sa.Text, nullable=True))
    rows = bind.execute(sa.text(
        "SELECT break_id, code, field, message FROM wf_break_state WHERE records = '[]'")).all()
    for break_id, code, field, message in rows:
        key = _key_of(str(break_id), str(code), str(field), str(message))
        if key is not None:
            bind.execute(sa.text("UPDATE wf_break_state SET id_key = :k WHERE break_id = :b"),
                         {"k": json.dumps(key), "b": break_id})


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
