"""Property tests: malformed and hostile JSON Lines never crash ingest.

Whatever the line, ingest either appends it or refuses the batch with problems
that each name the file, the line and a field; the ledger still verifies.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger import BatchRefusedError, Ledger
from schemas import RECORD_TYPES
from tests._examples import DELETE as DELETE_FIELD
from tests._examples import example
from tests._records import collection, payment_event

LOCATED = re.compile(r"^(?P<file>[^:]+\.jsonl):(?P<line>[0-9]+): (?P<field>[^\n]+?): .+", re.S)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["type", "id", "region", "occurred_at", "amount", "person_id", "period", "account",
          "insurance", "corrects", "allocations", "bank_ref", "value_date", "payer_id",
          "entry_count", "entries"]
STATEMENT = {  # the one record kind with an integer field of its own
    "type": "finance.statement", "id": "253CNY6222000011112222", "region": "440100",
    "occurred_at": "2026-03-31T18:00:00+08:00", "bank_account": "6222000011112222",
    "currency": "CNY", "format": "camt053", "entry_count": 0, "entries_net": "0.00",
}


@st.composite
def hostile_lines(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return draw(st.text(max_size=200)).replace("\n", " ")
    if choice == 1:
        return json.dumps(draw(json_values))
    base: dict[str, Any] = draw(st.sampled_from([payment_event(7), collection(7), STATEMENT]))
    rec = dict(base)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*FIELDS, "extra_" + draw(st.text(max_size=5))]))
        if draw(st.booleans()):
            rec.pop(key, None)
        else:
            rec[key] = draw(json_values)
    if choice == 3:
        return json.dumps(rec)[: draw(st.integers(1, 40))]  # truncated line
    if choice == 4:
        text = json.dumps(rec)
        return text[:-1] + f', "{draw(st.sampled_from(FIELDS))}": 1}}'  # duplicate key
    return json.dumps(rec, ensure_ascii=draw(st.booleans()))


@pytest.fixture
def sqlite_led(tmp_path: Path) -> Any:
    led = Ledger.open(str(tmp_path / "home"), f"sqlite:///{tmp_path / 'l.db'}", check=False)
    led.init("test.bfa.example/hostile")
    led = Ledger.open(str(tmp_path / "home"), f"sqlite:///{tmp_path / 'l.db'}")
    yield led
    led.close()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=hostile_lines())
def test_hostile_lines_rejected_cleanly(sqlite_led: Ledger, tmp_path: Path, line: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(payment_event(1)) + "\n" + line + "\n", encoding="utf-8")
    before = sqlite_led.size()
    try:
        reports = sqlite_led.ingest([str(path)], None)
    except BatchRefusedError as e:
        assert sqlite_led.size() == before  # nothing of the batch was written
        for problem in e.problems:
            m = LOCATED.match(str(problem))
            assert m, f"rejection without file:line:field: {problem}"
            assert m["line"] == "2" and m["file"] == str(path)
    else:
        assert reports[0].rejected == 0
        # whatever ingest accepts, verify accepts: no input can pass as a record and
        # then read as tampering (an integer beyond 2**53 - 1 once did)
        assert sqlite_led.verify().ok


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_hostile_bytes(sqlite_led: Ledger, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(data.replace(b"\n", b" ") + b"\n")
    try:
        sqlite_led.ingest([str(path)], None)
    except BatchRefusedError as e:
        for problem in e.problems:
            assert LOCATED.match(str(problem)), str(problem)


def test_ledger_verifies_after_hostile_run(sqlite_led: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"a":1}\n\xff\xfe\n' + json.dumps(payment_event(1)).encode() + b"\n")
    with pytest.raises(BatchRefusedError, match=r"mixed.jsonl:1: type: is required"):
        sqlite_led.ingest([str(path)], None)
    sqlite_led.checkpoint()
    assert sqlite_led.verify().ok


_IDS = itertools.count()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(min_value=-(2**70), max_value=2**70))
def test_any_accepted_count_verifies(sqlite_led: Ledger, tmp_path: Path, count: int) -> None:
    """An integer field is refused on its field or hashed so that verify agrees."""
    path = tmp_path / "count.jsonl"
    rid = f"ST-{next(_IDS)}"  # one ledger for all examples: a new record each time
    path.write_text(json.dumps(dict(STATEMENT, id=rid, entry_count=count)) + "\n",
                    encoding="utf-8")
    try:
        sqlite_led.ingest([str(path)], None)
    except BatchRefusedError as e:
        assert str(e.problems[0]).startswith(f"{path}:1: entry_count: ")
        return
    assert sqlite_led.verify().ok


@st.composite
def mutated_records(draw: st.DrawFn) -> dict[str, Any]:
    """A full example of any record kind with one to three fields changed or removed."""
    type_ = draw(st.sampled_from(sorted(RECORD_TYPES)))
    rec = example(type_, corrects=DELETE_FIELD, id=f"MUT-{next(_IDS)}")
    fields = sorted(rec)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(fields))
        if key in ("type", "id"):
            continue
        if draw(st.booleans()):
            rec.pop(key, None)
        else:
            rec[key] = draw(json_values | st.integers(-(2**70), 2**70))
    return rec


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rec=mutated_records())
def test_every_kind_is_refused_on_a_field_or_verifies(
        sqlite_led: Ledger, tmp_path: Path, rec: dict[str, Any]) -> None:
    """Over every record kind: a changed record is refused with file, line and field, or
    appended so that the full `bfa verify` (leaf format included) agrees."""
    path = tmp_path / "mut.jsonl"
    path.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    try:
        sqlite_led.ingest([str(path)], None)
    except BatchRefusedError as e:
        event("refused")
        assert LOCATED.match(str(e.problems[0])), str(e.problems[0])
        return
    event(f"accepted {rec['type']}")
    assert sqlite_led.verify().ok
