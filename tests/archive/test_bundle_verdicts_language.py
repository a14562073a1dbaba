"""``bfa bundle verify`` in the reader's language: each verdict's detail is a message
template with parameters (``Verdict.detail_msg``); the terminal shows it, and the check's
name beside its id, in the CLI's language, while ``--json`` keeps the English ``detail``
— byte for byte the same output in either language."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import schemas
from archive import verify_bundle
from ledger import Verifier
from tests._cli import h, ok
from tests.reconcile._blackbox import assessment, collection, voucher, write_jsonl

HAN = re.compile(r"[\u4e00-\u9fff]")
CHECKS = ["bag", "signature", "checkpoint", "entries", "vouchers", "disclosures", "closure",
          "consistency", "findings"]
NAMES = {"bag": "包", "signature": "签名", "checkpoint": "检查点", "entries": "条目",
         "vouchers": "凭证", "disclosures": "披露", "closure": "关联闭包",
         "consistency": "一致性", "findings": "发现项"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A bundle of two assessments (one unsettled: a finding re-derived) and its key."""
    root = tmp_path_factory.mktemp("bundle-lang")
    db = f"sqlite:///{root / 'ledger.db'}"
    home = root / "home"
    ok("init", *h(home, db), "--origin", "lang.example/ledger")
    key = root / "verifier.key"
    key.write_text(ok("key", "export", *h(home, db)).stdout, "utf-8")
    d = root / "in"
    d.mkdir()
    ok("ingest", str(write_jsonl(d / "a.jsonl", [
        assessment("CA-1"), collection("COL-1", allocs=[("CA-1", "1000.00")]),
        voucher(d, "fiscal_receipt", "FR-1", ["CA-1"]),
        voucher(d, "accounting_voucher", "AV-1", ["COL-1"]),
        assessment("CA-2", amount="500.00")])), *h(home, db))
    ok("checkpoint", *h(home, db))
    out = root / "bundle"
    ok("bundle", "export", *h(home, db), "--out", str(out), "--as-of", "2026-11-30",
       "--record", "CA-1", "--record", "CA-2")
    return out, key


def _verify(bag: Path, key: Path, lang: str, *extra: str, code: int = 0) -> str:
    with schemas.language(lang):
        return ok("--lang", lang, "bundle", "verify", str(bag), "--key", str(key), *extra,
                  code=code).stdout


def _verdict_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln[:4] in ("ok  ", "FAIL", "-   ")]


def test_details_are_templates_kept_beside_their_english(bundle: tuple[Path, Path]) -> None:
    bag, key = bundle
    verifier = Verifier.from_text(key.read_text("utf-8").strip())
    en = verify_bundle(bag, verifier, parallel=False)
    with schemas.language("zh_CN"):
        zh = verify_bundle(bag, verifier, parallel=False)
        shown = [v.text() for v in zh.verdicts]
        names = [v.name() for v in zh.verdicts]
    assert en.ok and zh.to_json() == en.to_json()
    assert [v.check for v in zh.verdicts] == CHECKS
    for v, text, name in zip(zh.verdicts, shown, names, strict=True):
        assert v.detail_msg is not None and v.detail_msg.english() == v.detail, v
        assert v.detail.isascii() and HAN.search(text), (v.detail, text)
        assert name == f"{v.check} {NAMES[v.check]}"
    assert [v.text() for v in en.verdicts] == [v.detail for v in en.verdicts]
    assert [v.name() for v in en.verdicts] == CHECKS
    entries = zh.verdicts[3].detail  # codes and English text from elsewhere stay as they are
    assert re.fullmatch(r"5 entries proven into the checkpoint of size \d+ "
                        r"\(3 closure, 2 scope\)", entries), entries
    assert re.fullmatch(r"5 个条目已证明包含在条目数为 \d+ 的检查点中（3 closure, 2 scope）",
                        shown[3]), shown[3]


def test_the_terminal_reads_in_chinese_and_json_stays_english(bundle: tuple[Path, Path]
                                                              ) -> None:
    bag, key = bundle
    en, zh = _verify(bag, key, "en"), _verify(bag, key, "zh_CN")
    en_lines, zh_lines = _verdict_lines(en), _verdict_lines(zh)
    assert [ln.split()[1] for ln in en_lines] == CHECKS  # the ids machines read
    assert [ln.split()[1] for ln in zh_lines] == CHECKS
    assert all(re.match(rf"ok   {c} +\S", ln) for c, ln in zip(CHECKS, en_lines, strict=True)
               if not ln.startswith("-")), en_lines
    for check, line in zip(CHECKS, zh_lines, strict=True):
        head = f"{check} {NAMES[check]}"
        assert head in line, line
        assert HAN.search(line.partition(head)[2]), line  # the detail, in Chinese
    assert not any(HAN.search(ln) for ln in en_lines)
    assert en.rstrip().endswith("VERIFIED") and zh.rstrip().endswith("VERIFIED")
    assert "re-derived and equal" in en and "经重新推导一致" in zh
    assert _verify(bag, key, "zh_CN", "--json") == _verify(bag, key, "en", "--json")


def test_a_failure_reads_in_chinese_with_its_file(bundle: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    bag = shutil.copytree(bundle[0], tmp_path / "unsigned")
    (bag / "bundle.sig").unlink()
    zh = _verify(bag, bundle[1], "zh_CN", code=3)
    fail = next(ln for ln in zh.splitlines() if ln.startswith("FAIL"))
    assert "signature 签名" in fail and "缺失：证据包未签名" in fail, fail
    assert "[bundle.sig]" in fail and zh.rstrip().endswith("INTEGRITY FAILURE")
    assert "未检查：前面的检查未通过" in zh
    en_json = _verify(bag, bundle[1], "en", "--json", code=3)
    assert _verify(bag, bundle[1], "zh_CN", "--json", code=3) == en_json
    first = next(v for v in json.loads(en_json)["verdicts"] if v["ok"] is False)
    assert first["detail"] == "missing: the bundle is not signed"
