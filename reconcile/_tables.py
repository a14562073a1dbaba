"""Derived tables of the reconciler (``rc_*``), one SQLAlchemy Core schema for both backends.

The reconciler owns these tables; they are *derived*: everything in them is re-decoded
from ledger entries (``ledger._schema.entries``) by :mod:`reconcile._refresh`, so they
may be dropped and rebuilt at any time. Alembic revision ``0002`` creates exactly these
tables (with the ledger's naming convention, so both backends get the same names).

Conventions kept in every table:

- money is integer fen (``BIGINT``), never float: ``Decimal("3456.78")`` is ``345678``;
- dates are *epoch days* (``INTEGER`` days since 1970-01-01), so "30 days after the
  due date" is integer arithmetic, identical on SQLite and PostgreSQL;
- personal fields hold the ledger's pseudonyms (``ps1:...``), never clear values;
- rows are keyed by the entry's ``seq``; ``record_id`` is the interchange id.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from ledger._schema import NAMING

metadata = MetaData(naming_convention=NAMING)

WATERMARK_KEY = "reconcile_seq"
"""Key in the ledger's ``meta`` table: the next entry ``seq`` the refresh will decode."""

RC_TABLES = (
    "rc_records", "rc_events", "rc_movements", "rc_allocations", "rc_vouchers", "rc_voucher_refs",
    "rc_person_events",
)

records = Table(
    "rc_records",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("domain", String(16), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("region", String(6), nullable=False),
    Column("occurred_at", String(40), nullable=False),
    Column("occurred_day", Integer, nullable=False),
    Column("corrects", String(128), nullable=True),
    Column("superseded", Boolean, nullable=False),
    # the id of the latest version (itself when not superseded), same domain
    Column("current_id", String(128), nullable=False),
    Column("entry_hash", String(64), nullable=False),  # hex, the entry's hash (break evidence)
    UniqueConstraint("domain", "record_id"),
    Index("ix_rc_records_record_id", "record_id"),
    Index("ix_rc_records_domain_corrects", "domain", "corrects"),
)

events = Table(
    "rc_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(128), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("due_day", Integer, nullable=True),
    # due_day when the kind has one, else the occurred_at date: windows count from here
    Column("anchor_day", Integer, nullable=False),
    Column("party", String(40), nullable=True),  # employer_party or payer_id pseudonym
    Column("person", String(40), nullable=True),  # person_id pseudonym
    Column("account", String(40), nullable=True),  # account pseudonym
    Column("insurance", String(16), nullable=True),
    Column("period", String(7), nullable=True),
    Index("ix_rc_events_record_id", "record_id"),
    Index("ix_rc_events_kind_amount_fen", "kind", "amount_fen"),
)

movements = Table(
    "rc_movements",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(128), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("settles", String(48), nullable=True),  # the event kind this movement kind settles
    Column("amount_fen", BigInteger, nullable=False),
    Column("value_day", Integer, nullable=False),
    Column("value_month", String(7), nullable=False),  # YYYY-MM of value_date
    Column("bank_ref", String(128), nullable=False),
    Column("payer", String(40), nullable=True),  # payer_id pseudonym (party class)
    Column("payee_account", String(40), nullable=True),  # payee_account pseudonym
    Column("fund_account", String(16), nullable=True),
    Column("from_account", String(16), nullable=True),  # sweeps
    Column("to_account", String(16), nullable=True),  # sweeps
    Column("returns", String(128), nullable=True),
    Column("allocated", Boolean, nullable=False),
    Index("ix_rc_movements_record_id", "record_id"),
)

allocations = Table(
    "rc_allocations",
    metadata,
    Column("movement_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("pos", Integer, primary_key=True, autoincrement=False),
    Column("movement_id", String(128), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Index("ix_rc_allocations_event_id", "event_id"),
)

vouchers = Table(
    "rc_vouchers",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(128), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("amount_fen", BigInteger, nullable=True),
)

voucher_refs = Table(
    "rc_voucher_refs",
    metadata,
    Column("voucher_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ref_id", String(128), primary_key=True),
    Column("voucher_id", String(128), nullable=False),
    Index("ix_rc_voucher_refs_ref_id", "ref_id"),
)

person_events = Table(
    "rc_person_events",
    metadata,
    # benefit approvals and terminations: the person's status the domain rules compare with
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(128), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("person", String(40), nullable=False),  # person_id pseudonym
    Column("insurance", String(16), nullable=False),  # a termination may say "all"
    Column("account", String(40), nullable=True),  # approval: account pseudonym
    # approval: start_period; termination: the first period it no longer covers (YYYY-MM)
    Column("period", String(7), nullable=True),
    Column("effective_day", Integer, nullable=True),  # termination: effective_date
    Index("ix_rc_person_events_person", "person"),
)
