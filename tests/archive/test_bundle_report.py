"""The report of ``bfa bundle verify``: its list of findings not re-derived stays out of
memory past a few items, and reads back the same."""

from __future__ import annotations

import pytest

from archive._bundle_verify import BundleReport, NotRederivable
from reconcile import msg
from schemas import language


def test_findings_not_rederived_spill_to_a_file_and_read_back_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NotRederivable, "KEPT", 2)
    report = BundleReport()
    outside = msg("depends on records outside the bundle")
    for i in range(7):
        report.not_rederivable_here(f"B-{i}", "OVERPAYMENT", outside)
    listed = report.not_rederivable
    expected = [{"id": f"B-{i}", "code": "OVERPAYMENT",
                 "why": "depends on records outside the bundle"} for i in range(7)]
    assert len(listed) == 7 and listed._file is not None  # past KEPT: on disk
    assert list(listed) == expected
    assert list(listed) == expected  # read again: the same
    report.not_rederivable_here("B-7", "OVERPAYMENT", outside)  # added after a read
    assert [x["id"] for x in listed][-2:] == ["B-6", "B-7"]
    assert listed.head(20) == expected[:2]
    assert report.to_json()["not_rederivable"][:7] == expected
    assert "not_rederivable" not in report.to_json(listed=False)
    with language("zh"):
        assert listed.why_text(expected[0]) == outside.text()
    listed.close()


def test_an_empty_list() -> None:
    report = BundleReport()
    assert not report.not_rederivable and len(report.not_rederivable) == 0
    assert list(report.not_rederivable) == [] and report.not_rederivable.head(5) == []
