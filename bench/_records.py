"""Realistic interchange records for the benchmarks, written as one JSON Lines file.

The mix follows what a pooling region sends month after month (see
``cli/_demo.py`` and ``tests/_records.py``): benefit payments dominate,
then contribution assessments and the collections that settle them (with
allocations), enrolments, approvals, payment batches with allocations, refunds,
transfers, terminations, sweeps, returns and a trickle of corrections
(``corrects``). Archive records are left out: they need voucher files.

Every record id is unique across all domains, so ``Ledger.prove(id)`` needs no
``--domain``. Generation is deterministic for a given ``seed`` and streams to
disk, so 5 million records need no more memory than 1 thousand.
"""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_REGIONS = ("440100", "440300", "440600", "441900")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂"
_INSURANCE = ("pension", "pension", "pension", "medical", "unemployment", "work_injury",
              "maternity")
_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("benefit_payment", 38),
    ("contribution_assessment", 18),
    ("collection", 16),
    ("enrollment", 10),
    ("benefit_approval", 4),
    ("payment", 3),
    ("business_refund", 2),
    ("finance_refund", 2),
    ("transfer_out", 2),
    ("transfer_in", 1),
    ("termination", 2),
    ("sweep", 1),
    ("return", 1),
)
"""Relative frequency per 100 records."""


@dataclass(frozen=True, slots=True)
class RecordsFile:
    """A generated input file and what the benchmarks need to know about it."""

    path: Path
    records: int
    size_bytes: int
    sample_ids: tuple[str, ...]
    """Ids of randomly chosen records of the file (for proofs)."""
    kinds: dict[str, int]


def _person_id(rng: random.Random, region: str) -> str:
    """An 18-character ID in the GB 11643 layout, with a valid check character."""
    birth = f"{rng.randint(1950, 2004)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = f"{region}{birth}{rng.randint(0, 999):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    return body + check


class _Generator:
    """Produces one record at a time; keeps small pools of ids to refer back to."""

    def __init__(self, n: int, seed: int) -> None:
        rng = self.rng = random.Random(seed)
        persons = max(500, min(200_000, n // 10))
        self.people: list[tuple[str, str, str, str]] = []
        for _ in range(persons):
            region = rng.choice(_REGIONS)
            name = rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(("", *_GIVEN))
            account = "6222" + "".join(rng.choices("0123456789", k=15))
            self.people.append((region, _person_id(rng, region), name, account))
        self.employers = [f"91{rng.choice(_REGIONS)}MA{rng.randint(10**7, 10**8 - 1)}"
                          for _ in range(max(50, persons // 20))]
        kinds, weights = zip(*_WEIGHTS, strict=True)
        self.kinds: tuple[str, ...] = kinds
        self.cum: list[int] = []
        total = 0
        for w in weights:
            total += w
            self.cum.append(total)
        self.assessments: deque[tuple[str, str]] = deque(maxlen=200)
        self.payments: deque[tuple[str, str]] = deque(maxlen=400)
        self.paid: deque[str] = deque(maxlen=200)
        self.old_payments: deque[str] = deque(maxlen=20_000)
        self.seq = 0

    def _period(self) -> str:
        month = self.seq // 50_000
        return f"{2020 + (month // 12) % 10}-{month % 12 + 1:02d}"

    def _when(self, day: int, hour: int) -> str:
        return f"{self._period()}-{day:02d}T{hour:02d}:{self.rng.randint(0, 59):02d}:00+08:00"

    def _money(self, lo: int, hi: int) -> str:
        cents = self.rng.randint(lo * 100, hi * 100)
        return f"{cents // 100}.{cents % 100:02d}"

    def next(self) -> dict[str, Any]:
        rng = self.rng
        self.seq += 1
        i = self.seq
        pick = rng.randrange(self.cum[-1])
        kind = next(k for k, c in zip(self.kinds, self.cum, strict=True) if pick < c)
        region, pid, name, account = rng.choice(self.people)
        period = self._period()
        base: dict[str, Any]
        if kind == "benefit_payment":
            amount = self._money(1500, 9000)
            base = {"type": "business.benefit_payment", "id": f"BP-{i:09d}", "region": region,
                    "occurred_at": self._when(20, 9), "person_id": pid,
                    "insurance": "pension", "period": period, "amount": amount,
                    "account": account}
            if self.old_payments and rng.random() < 0.02:
                base["corrects"] = self.old_payments.popleft()
                base["source"] = "pension-system-correction"
            else:
                self.old_payments.append(base["id"])
            self.payments.append((base["id"], amount))
            return base
        if kind == "contribution_assessment":
            amount = self._money(200, 30000)
            base = {"type": "business.contribution_assessment", "id": f"CA-{i:09d}",
                    "region": region, "occurred_at": self._when(5, 10),
                    "employer_id": rng.choice(self.employers),
                    "insurance": rng.choice(_INSURANCE), "period": period, "amount": amount,
                    "due_date": f"{period}-15"}
            if rng.random() < 0.5:
                base["person_id"] = pid
            self.assessments.append((base["id"], amount))
            return base
        if kind == "collection":
            allocs = [{"event": a, "amount": m} for a, m in
                      (self.assessments.popleft() for _ in
                       range(min(len(self.assessments), rng.randint(1, 3))))]
            total = sum(int(a["amount"].replace(".", "")) for a in allocs) or 10000
            base = {"type": "finance.collection", "id": f"COL-{i:09d}", "region": region,
                    "occurred_at": self._when(12, 15),
                    "amount": f"{total // 100}.{total % 100:02d}",
                    "value_date": f"{period}-12",
                    "bank_ref": f"ICBC{rng.randint(10**11, 10**12 - 1)}",
                    "payer_id": rng.choice(self.employers), "fund_account": "income"}
            if allocs:
                base["allocations"] = allocs
            return base
        if kind == "enrollment":
            base = {"type": "business.enrollment", "id": f"EN-{i:09d}", "region": region,
                    "occurred_at": self._when(1, 9), "person_id": pid,
                    "insurance": rng.choice(_INSURANCE), "effective_date": f"{period}-01",
                    "name": name}
            if rng.random() < 0.8:
                base["employer_id"] = rng.choice(self.employers)
            return base
        if kind == "benefit_approval":
            return {"type": "business.benefit_approval", "id": f"BA-{i:09d}", "region": region,
                    "occurred_at": self._when(2, 11), "person_id": pid,
                    "insurance": "pension", "benefit": "basic_pension",
                    "monthly_amount": self._money(1500, 9000), "start_period": period,
                    "account": account, "name": name}
        if kind == "payment":
            batch = [self.payments.popleft() for _ in
                     range(min(len(self.payments), rng.randint(5, 40)))]
            total = sum(int(m.replace(".", "")) for _, m in batch) or 10000
            base = {"type": "finance.payment", "id": f"PAY-{i:09d}", "region": region,
                    "occurred_at": self._when(20, 14),
                    "amount": f"{total // 100}.{total % 100:02d}",
                    "value_date": f"{period}-20",
                    "bank_ref": f"CCB{rng.randint(10**11, 10**12 - 1)}",
                    "fund_account": "expenditure"}
            if batch:
                base["allocations"] = [{"event": b, "amount": m} for b, m in batch]
                self.paid.extend(b for b, _ in batch[:2])
            return base
        if kind == "business_refund":
            return {"type": "business.refund", "id": f"BR-{i:09d}", "region": region,
                    "occurred_at": self._when(8, 10), "payer_id": pid,
                    "insurance": rng.choice(_INSURANCE), "amount": self._money(50, 3000),
                    "reason": "多缴退费 overpaid contributions"}
        if kind == "finance_refund":
            return {"type": "finance.refund", "id": f"FRF-{i:09d}", "region": region,
                    "occurred_at": self._when(9, 10), "amount": self._money(50, 3000),
                    "value_date": f"{period}-09",
                    "bank_ref": f"ABC{rng.randint(10**11, 10**12 - 1)}",
                    "fund_account": "expenditure", "payee_account": account}
        if kind == "transfer_out":
            return {"type": "business.transfer_out", "id": f"TO-{i:09d}", "region": region,
                    "occurred_at": self._when(15, 10), "person_id": pid,
                    "insurance": "pension", "to_region": rng.choice(_REGIONS),
                    "amount": self._money(5000, 90000)}
        if kind == "transfer_in":
            return {"type": "business.transfer_in", "id": f"TI-{i:09d}", "region": region,
                    "occurred_at": self._when(15, 11), "person_id": pid,
                    "insurance": "pension", "from_region": rng.choice(_REGIONS),
                    "amount": self._money(5000, 90000)}
        if kind == "termination":
            return {"type": "business.termination", "id": f"TE-{i:09d}", "region": region,
                    "occurred_at": self._when(25, 10), "person_id": pid,
                    "insurance": rng.choice(("pension", "all")),
                    "effective_date": f"{period}-25",
                    "reason": rng.choice(("death", "emigration", "other"))}
        if kind == "sweep":
            return {"type": "finance.sweep", "id": f"SW-{i:09d}", "region": region,
                    "occurred_at": self._when(28, 16), "amount": self._money(10**5, 10**7),
                    "value_date": f"{period}-28",
                    "bank_ref": f"BOC{rng.randint(10**11, 10**12 - 1)}",
                    "from_account": "income", "to_account": "fiscal_special"}
        # return: a benefit payment the bank could not credit
        event = self.paid.popleft() if self.paid else f"BP-{max(1, i - 1):09d}"
        return {"type": "finance.return", "id": f"RET-{i:09d}", "region": region,
                "occurred_at": self._when(22, 10), "amount": "100.00",
                "value_date": f"{period}-22",
                "bank_ref": f"CCB{rng.randint(10**11, 10**12 - 1)}",
                "fund_account": "expenditure", "returns": f"PAY-{max(1, i - 1):09d}",
                "allocations": [{"event": event, "amount": "100.00"}],
                "reason": "账户已销户 account closed"}


def write_records(path: Path, n: int, *, seed: int = 20261123, samples: int = 1000) -> RecordsFile:
    """Write ``n`` records to ``path`` (JSON Lines, UTF-8); return a description of it."""
    gen = _Generator(n, seed)
    pick = random.Random(seed + 1)
    chosen = set(pick.sample(range(n), min(samples, n)))
    sample_ids: list[str] = []
    kinds: dict[str, int] = {}
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    size = 0
    with path.open("w", encoding="utf-8") as f:
        buf: list[str] = []
        for i in range(n):
            rec = gen.next()
            kinds[rec["type"]] = kinds.get(rec["type"], 0) + 1
            if i in chosen:
                sample_ids.append(rec["id"])
            buf.append(dumps(rec))
            if len(buf) >= 10_000:
                text = "\n".join(buf) + "\n"
                size += len(text.encode())
                f.write(text)
                buf = []
        if buf:
            text = "\n".join(buf) + "\n"
            size += len(text.encode())
            f.write(text)
    pick.shuffle(sample_ids)
    return RecordsFile(path, n, size, tuple(sample_ids), kinds)


def split_file(src: RecordsFile, first: int, out_dir: Path) -> tuple[Path, Path]:
    """Split ``src`` into its first ``first`` lines and the rest (two new files)."""
    a, b = out_dir / f"{src.path.stem}-head.jsonl", out_dir / f"{src.path.stem}-tail.jsonl"
    with src.path.open("rb") as f, a.open("wb") as fa, b.open("wb") as fb:
        for i, line in enumerate(f):
            (fa if i < first else fb).write(line)
    return a, b
