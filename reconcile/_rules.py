"""Reconciliation rules: the windows and tolerances, with the INTERCHANGE defaults.

An agency will change them in a rules file (TOML, later); for now they are a
:class:`Rules` model built from a plain dict of overrides. All windows are in days.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_RULES: Mapping[str, int] = {
    "settlement_days": 30,
    "late_days": 30,
    "match_days_before": 60,
    "match_days_after": 30,
    "voucher_days": 30,
    "orphan_days": 30,
}
"""The defaults of INTERCHANGE "What consistency means", as a dict."""


class Rules(BaseModel):
    """Windows (days) the reconciler judges by; see :data:`DEFAULT_RULES`."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    settlement_days: int = Field(default=DEFAULT_RULES["settlement_days"], ge=0)
    """An unsettled event is *expected* until this many days after its due date
    (events without one: their ``occurred_at`` date); after that, ``UNSETTLED_EVENT``."""
    late_days: int = Field(default=DEFAULT_RULES["late_days"], ge=0)
    """A collection settling an assessment with a value date more than this many days
    after the ``due_date`` is ``LATE_SETTLEMENT``."""
    match_days_before: int = Field(default=DEFAULT_RULES["match_days_before"], ge=0)
    """Heuristic match: value date at most this many days before the due date."""
    match_days_after: int = Field(default=DEFAULT_RULES["match_days_after"], ge=0)
    """Heuristic match: value date at most this many days after the due date."""
    voucher_days: int = Field(default=DEFAULT_RULES["voucher_days"], ge=0)
    """A missing voucher is *expected* until this many days after the record's
    ``occurred_at`` date; after that, ``MISSING_VOUCHER``."""
    orphan_days: int = Field(default=DEFAULT_RULES["orphan_days"], ge=0)
    """A movement with no event behind it is *expected* (the event may still arrive)
    until this many days after its value date; after that, ``ORPHAN_MOVEMENT``."""

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any] | None = None) -> Rules:
        """Defaults with ``overrides`` applied; unknown keys are refused."""
        return cls.model_validate({**DEFAULT_RULES, **(overrides or {})})
