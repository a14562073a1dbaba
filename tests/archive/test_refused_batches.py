"""A refused batch leaves nothing behind (FORMAT.md §9.1, §9.5): not its entries, and not the
voucher files it brought into the content-addressed store; files the store already held for
earlier records stay. Both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive import FileStore
from ledger import BatchRefusedError, Ledger
from tests._records import payment_event, voucher, write_jsonl


def _files(store: FileStore) -> set[str]:
    return {p.name for p in (store.root / "sha256").rglob("*") if p.is_file()}


def test_a_refused_batch_takes_its_voucher_files_back(led: Ledger, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "archive")
    kept = voucher(tmp_path, 1, ["BP-1"], b"slip one")
    led.ingest([str(write_jsonl(tmp_path / "a.jsonl", [payment_event(1), kept]))], store)
    before = _files(store)
    assert before == {kept["sha256"]}
    size = led.size()
    again = voucher(tmp_path, 2, ["BP-2"], b"slip one")  # the same bytes as a stored file
    new = voucher(tmp_path, 3, ["BP-2"], b"slip three")
    bad = {**payment_event(9), "amount": "not money"}
    batch = write_jsonl(tmp_path / "b.jsonl", [payment_event(2), again, new, bad])
    with pytest.raises(BatchRefusedError):
        led.ingest([str(batch)], store)
    assert led.size() == size and _files(store) == before
    led.ingest([str(write_jsonl(tmp_path / "c.jsonl", [payment_event(2), again, new]))], store)
    assert _files(store) == {kept["sha256"], new["sha256"]}
