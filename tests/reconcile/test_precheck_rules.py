"""``bfa precheck`` holds a line for exactly the breaks the reconciler reports once the
batch is ingested (ADR 0037): random ledgers of approvals (restarts, several in one month,
other accounts and amounts), terminations (of one insurance or ``all``, before, in and
after an approval's month, recorded before or after it) and payments, random batches
(recurring and one-off lines, repeated months, other accounts), judged by the check and
then by ``run_reconcile`` on the same records. And the file read by worker processes a
block at a time gives the same rows and names the same first problems as read alone.
Both backends."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from ledger import BatchRefusedError, Ledger, LocatedInputError, ProposedFile, ProposedLine
from reconcile import Held, precheck, run_reconcile
from tests.reconcile import _scenarios as sc

ACCOUNTS = (sc.ACCOUNT, "6222999988887777666")
AMOUNTS = ("1000.00", "2000.00")
MONTHS = [f"2026-{m:02d}" for m in range(1, 13)]


def _at(rng: random.Random, month: str) -> str:
    return f"{month}-{rng.choice(('03', '15', '28'))}T10:00:00+08:00"


def _ledger_records(rng: random.Random, people: int) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = []
    for w in range(1, people + 1):
        for k in range(rng.choice((0, 1, 1, 2, 3))):
            start = rng.choice(MONTHS)
            recs.append({**sc.approval(f"BA-{w}-{k}", rng.choice(ACCOUNTS), start=start, who=w),
                         "monthly_amount": rng.choice(AMOUNTS),
                         "occurred_at": _at(rng, rng.choice((start, "2026-01")))})
        for k in range(rng.choice((0, 0, 1, 2))):
            eff = f"{rng.choice(MONTHS)}-{rng.choice(('01', '15'))}"
            recs.append({**sc.termination(f"TE-{w}-{k}", eff, who=w,
                                          insurance=rng.choice(("pension", "pension", "all"))),
                         "occurred_at": _at(rng, eff[:7])})
        for k in range(rng.choice((0, 0, 1))):
            recs.append({**sc.payment_event(0, rng.choice(AMOUNTS), who=w,
                                            period=rng.choice(MONTHS)),
                         "id": f"BP-L-{w}-{k}", "account": rng.choice(ACCOUNTS)})
    return recs


def _batch(rng: random.Random, people: int, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        rec = {**sc.payment_event(0, rng.choice((*AMOUNTS, "1000.00", "500.00")),
                                  who=rng.randint(1, people + 2), period=rng.choice(MONTHS)),
               "id": f"BP-B-{i}", "account": rng.choice(ACCOUNTS)}
        benefit = rng.choice((None, None, None, "basic_pension", "funeral_grant"))
        if benefit is not None:
            rec["benefit"] = benefit
        out.append(rec)
    return out


# what each reason is once the line is ingested: the break the reconciler reports on it
BREAKS = {"no_approval": ("PAYMENT_WITHOUT_APPROVAL",), "terminated":
          ("PAYMENT_AFTER_TERMINATION",), "payee_mismatch": ("PAYEE_MISMATCH",),
          "over_approved": ("OVERPAYMENT",),
          # with the ledger's payments or inside the batch: one code after ingest
          "already_paid": ("DUPLICATE_PAYMENT",), "duplicate_in_batch": ("DUPLICATE_PAYMENT",)}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_held_exactly_where_the_reconciler_breaks(led: Ledger, tmp_path: Path,
                                                   seed: int) -> None:
    rng = random.Random(seed)
    people = 14
    sc.ingest(led, tmp_path, _ledger_records(rng, people), "ledger")
    lines = _batch(rng, people, 90)
    path = tmp_path / "pay.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), "utf-8")
    held: dict[str, set[str]] = {}

    def sink(h: Held, text: str | None) -> None:
        held[h.record_id] = {c for r in h.reasons for c in BREAKS.get(r, ())}

    precheck(led, path, on_held=sink)
    sc.ingest(led, tmp_path, lines, "batch")
    report = run_reconcile(led, sc.AS_OF)
    ids = {str(r["id"]) for r in lines}
    codes = {c for cs in BREAKS.values() for c in cs}
    broken: dict[str, set[str]] = {}
    for b in report.breaks:
        if b.code in codes:
            for rid in b.records:
                if rid in ids:
                    broken.setdefault(rid, set()).add(b.code)
    assert {k: v for k, v in held.items() if v} == broken
    assert sum(1 for _ in held) > 10  # the random batch does hold lines, for most reasons
    assert len({c for v in broken.values() for c in v}) >= 4


def _lines(n: int, bad: dict[int, str]) -> str:
    out = []
    for i in range(1, n + 1):
        if i in bad:
            out.append(bad[i])
        elif i % 7 == 0:
            out.append("   ")  # blank lines count as lines, not as records
        else:
            out.append(json.dumps(sc.payment_event(i, who=i % 5)))
    return "\n".join(out)  # no line end after the last


def test_blocks_read_by_workers_as_read_alone(tmp_path: Path) -> None:
    path = tmp_path / "pay.jsonl"
    path.write_text(_lines(300, {}), "utf-8")
    secret = b"k" * 32
    alone = ProposedFile(path)
    want = list(alone.lines(secret))
    assert len(want) == alone.count == 300 - 300 // 7
    batch = ProposedFile(path)
    got = [ln for part in batch.parts(secret, workers=2, block=700) for ln in part]
    assert got == want and (batch.digest, batch.count) == (alone.digest, alone.count)
    text = b"".join(p for p in ProposedFile(path).parts(secret, as_text=True, workers=2,
                                                        block=500) if isinstance(p, bytes))
    assert text.decode().splitlines()[0].split("\t")[:3] == [str(want[0].line),
                                                             want[0].record_id, want[0].region]
    assert len(text.decode().splitlines()) == len(want)


def test_a_bad_line_in_a_later_block_is_named_by_its_line(tmp_path: Path) -> None:
    """Problems found by worker processes name the line of the file (not of the block),
    the first ones in line order, worded as read alone."""
    path = tmp_path / "pay.jsonl"
    bad = {251: json.dumps({**sc.payment_event(1), "amount": "12.3"}),
           263: "{not json", 290: json.dumps({**sc.payment_event(2), "id": "x y"})}
    path.write_text(_lines(300, bad), "utf-8")
    alone: list[Any] = []
    for workers, block in ((0, 1 << 20), (2, 600), (1, 64)):
        with pytest.raises(BatchRefusedError) as err:
            for _part in ProposedFile(path).parts(b"k" * 32, workers=workers, block=block):
                pass
        probs = [(p.line, p.field, p.reason, str(p)) for p in err.value.problems]
        assert [p[:2] for p in probs] == [(251, "amount"), (263, "line"), (290, "id")]
        alone = alone or probs
        assert probs == alone
        assert str(err.value).startswith(f"{path}: batch refused")


def test_copy_text_escapes_what_postgresql_would_read_otherwise() -> None:
    from ledger._store import copy_text_line

    assert copy_text_line((1, "BP-1", None, 250)) == "1\tBP-1\t\\N\t250\n"
    assert copy_text_line(("a\\N", None, "t\tz", "n\nl\r")) == "a\\\\N\t\\N\tt\\tz\tn\\nl\\r\n"


def test_a_backslash_reaches_the_check_as_sent(led: Ledger, tmp_path: Path) -> None:
    """A ``benefit`` with a backslash (valid short text) goes through COPY unchanged: the
    line is judged as a recurring payment of that benefit, not refused or altered."""
    sc.ingest(led, tmp_path, [sc.approval("BA-1", sc.ACCOUNT)], "ledger")
    path = tmp_path / "pay.jsonl"
    lines = [{**sc.payment_event(1, who=1), "benefit": "basic\\pension"},
             {**sc.payment_event(2, who=1), "benefit": "basic\\pension"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), "utf-8")
    got: dict[int, tuple[str, ...]] = {}
    precheck(led, path, on_held=lambda h, _t: got.__setitem__(h.line, h.reasons), workers=1)
    assert got == {1: ("over_approved", "duplicate_in_batch"),
                   2: ("over_approved", "duplicate_in_batch")}


PAYMENT = "business.benefit_payment"


def _as_ingest_reads(text: str) -> tuple[str, str, Any]:
    """What ingest's reading makes of a line: its values, or the problem it names."""
    from ledger._ingest import parse_line

    try:
        obj, model = parse_line("pay.jsonl", 1, text)
    except LocatedInputError as e:
        return ("refused", e.field, str(e))
    return ("read", model.type, sorted(obj.items()))


def test_the_quick_reading_takes_only_what_ingest_takes() -> None:
    """A payment line read straight from its text by the model (``_valid_payment``) is
    one ingest's reading takes, with the same values; whatever else, and every line it
    declines, goes to ingest's reading, so problems are named as before. Lines near the
    edges: duplicate names (also with a number, an object or ``null`` before the last),
    escapes, whitespace JSON does and does not allow, a byte-order mark, trailing data,
    ``withdrawn``, extra or missing members, numbers, ``null``, control characters."""
    from ledger._privacy import Pseudonymizer
    from ledger._proposed import _parse, _row_text, _valid_payment
    from ledger._store import copy_text_line
    from schemas import BusinessBenefitPayment

    # the proof in _valid_payment counts on every field but ``withdrawn`` taking strings
    assert set(BusinessBenefitPayment.model_fields) == {
        "type", "id", "region", "occurred_at", "corrects", "source", "withdrawn",
        "person_id", "insurance", "period", "amount", "account", "name", "benefit"}
    good = json.dumps({**sc.payment_event(1, who=1), "benefit": "back_pay", "name": "张三"},
                      ensure_ascii=False)
    body = good[1:-1]
    texts = [
        good, json.dumps(json.loads(good)), good.replace(", ", ","), good.replace(":", " : "),
        good + " ", " " + good, good + "\t", "\ufeff" + good, good + "\x0c", good + "}",
        good + "x", good.replace(", ", ",\x0c"), good.replace(", ", ",\xa0"),
        good.replace(", ", ",\x0b"), good.replace(", ", ", \t\r\n"), "{" + body + ",}",
        "{" + body + ', "amount": "1.00"}', '{"amount": 5, ' + body + "}",
        '{"amount": null, ' + body + "}", '{"amount": {"a": "b"}, ' + body + "}",
        '{"amount": ["x", "y"], ' + body + "}", '{"benefit": "x", ' + body + "}",
        '{"type": "business.benefit_payment", ' + body + "}",
        "{" + body + ', "withdrawn": {"request": "W-1", "reason": "r", "requested_by": "u"}}',
        "{" + body + ', "corrects": "BP-0", "withdrawn": {"request": "W-1", "reason": "r", '
        '"requested_by": "u"}}',
        "{" + body + ', "corrects": "BP-0"}', "{" + body + ', "source": "hr"}',
        "{" + body + ', "x": "1"}', "{" + body + ', "x": 1}', "{" + body + ', "benefit": null}',
        good.replace('"back_pay"', '"back\\u005fpay"'),
        good.replace('"back_pay"', '"a\\\\b"'), good.replace('"back_pay"', '"\\ud800"'),
        good.replace('"back_pay"', '"back\x01pay"'), good.replace('"back_pay"', '"back\x7fpay"'),
        good.replace('"back_pay"', '" back_pay"'), good.replace('"back_pay"', '"back\tpay"'),
        good.replace('"back_pay"', '""'), good.replace('"back_pay"', "12"),
        good.replace('"back_pay"', "NaN"), good.replace('"back_pay"', "1e999"),
        good.replace('"back_pay"', "true"),
        good.replace('"business.benefit_payment"', '"business.benefit_approval"'),
        good.replace('"business.benefit_payment"', '"business.benefit_paymen"'),
        good.replace('"1', '"0'), good.replace('"2026-', '"2026-1'),
        good.replace('"occurred_at"', '"occurred_At"'), good.replace("+08:00", ""),
        good.replace('"id": "', '"id": "x y'), good.replace(', "name": "张三"', ""),
        good.replace('"pension"', '"all"'), '["x"]', "{}", '{"type": "x"}', "null", "1",
    ]
    for k, field in enumerate(("amount", "period", "person_id", "account", "region")):
        texts.append(good.replace(f'"{field}": ', f'"{field}": "{k}", "{field}": ', 1))
    secret, taken = b"k" * 32, 0
    for text in texts:
        want = _as_ingest_reads(text)
        quick = _valid_payment(text)
        if quick is not None:
            taken += 1
            assert want[0] == "read" and want[1] == PAYMENT, text
            assert sorted(quick.items()) == want[2]
        # and the line as the check reads it: the same row or the same problem as ingest
        try:
            line = _parse(Pseudonymizer(secret), "pay.jsonl", 1, text.encode())
        except LocatedInputError as e:  # the problem ingest names, or not a payment
            assert (want[0] == "refused" and str(e) == want[2]) or (
                want[0] == "read" and want[1] != PAYMENT and e.field == "type"), text
            line = None
        if line is not None:
            assert want[0] == "read" and want[1] == PAYMENT, text
            rec, ps = dict(want[2]), Pseudonymizer(secret).pseudonym
            yuan, _dot, fen = rec["amount"].partition(".")
            assert line == ProposedLine(
                1, rec["id"], rec["region"], ps("person_id", rec["person_id"]),
                rec["insurance"], rec["period"], int(yuan) * 100 + int(fen),
                ps("account", rec["account"]), rec.get("benefit"), rec.get("corrects")), text
            # and its COPY row, straight from the text or through the row
            row = _row_text(Pseudonymizer(secret), 1, text.encode())
            assert row is None or row == copy_text_line(line), text
        else:
            assert _row_text(Pseudonymizer(secret), 1, text.encode()) is None, text
    assert taken >= 5  # the quick reading is used, not only declined
