"""Which language bfa speaks (FORMAT §10.1) and that it speaks it: help, terminal output,
break messages; JSON keeps codes, parameters and English."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import schemas
from cli import _i18n
from reconcile import Break, Expected, code_label, label, msg
from tests._cli import h, invoke, ok

HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(("text", "lang"), [
    ("zh_CN.UTF-8", "zh_CN"), ("zh", "zh_CN"), ("zh-Hans", "zh_CN"), ("zh_TW.Big5", "zh_CN"),
    ("en_US.UTF-8", "en"), ("C", "en"), ("POSIX", "en"), ("C.UTF-8", "en"), ("fr_FR", None),
    ("", None)])
def test_locale_names(text: str, lang: str | None) -> None:
    assert schemas.parse_language(text) == lang


def test_locale_precedence_is_posix() -> None:
    env = {"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "en_US.UTF-8"}
    assert schemas.language_from_env(env) == "en"
    assert schemas.language_from_env({**env, "LC_ALL": "zh_CN.UTF-8"}) == "zh_CN"
    assert schemas.language_from_env({"LANG": "de_DE.UTF-8"}) == "en"
    assert schemas.language_from_env({}) == "en"


def test_choice_order_flag_env_home_locale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.json").write_text(json.dumps({"origin": "x.example/1", "lang": "zh_CN"}))
    monkeypatch.setenv("LC_ALL", "en_US.UTF-8")
    assert _i18n.choose(None, ["--home", str(home), "status"]) == "zh_CN"
    assert _i18n.choose(None, [f"--home={home}"]) == "zh_CN"
    assert _i18n.choose("en", ["--home", str(home)]) == "en"
    assert _i18n.choose(None, ["--home", str(tmp_path / "none")]) == "en"
    monkeypatch.setenv("LC_ALL", "zh_CN.UTF-8")
    assert _i18n.choose(None, ["--home", str(tmp_path / "none")]) == "zh_CN"


def test_help_in_chinese_and_english() -> None:
    zh = ok("--lang", "zh_CN", "--help").stdout
    assert "用法" in zh and HAN.search(zh.split("Commands")[0])
    assert "reconcile" in zh  # command names stay as typed
    en = ok("--help").stdout
    assert "Usage:" in en and "用法" not in en and "Commands:" in en
    sub = ok("--lang", "zh_CN", "reconcile", "--help").stdout
    assert HAN.search(sub) and "--as-of" in sub
    env = ok("reconcile", "--help", env={"BFA_LANG": "zh_CN"}).stdout
    assert env == sub


def test_unknown_language_is_a_usage_error() -> None:
    res = invoke("--lang", "fr", "status")
    assert res.exit_code == 2 and "--lang" in res.output


def test_init_records_the_language_and_commands_use_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok("init", *h(home), "--origin", "agency.example/1", "--lang", "zh_CN")
    assert json.loads((home / "config.json").read_text())["lang"] == "zh_CN"
    out = ok("status", *h(home)).stdout
    assert HAN.search(out), out
    assert not HAN.search(ok("--lang", "en", "status", *h(home)).stdout)
    (home / "config.json").write_text(json.dumps({"origin": "agency.example/1", "lang": "fr"}))
    res = invoke("--lang", "en", "status", *h(home))
    assert res.exit_code == 2 and "lang" in res.output


def test_a_break_message_is_english_in_json_and_chinese_for_a_reader() -> None:
    b = Break.make("AMOUNT_MISMATCH", ("E1", "M1"), {"event": 100, "allocated": 73}, "amount",
                   msg("allocated {allocated}, event {event}", allocated="0.73", event="1.00"),
                   27)
    data = b.model_dump(mode="json")
    assert data["message"] == "allocated 0.73, event 1.00"
    assert data["template"] == "allocated {allocated}, event {event}"
    assert data["params"] == {"allocated": "0.73", "event": "1.00"}
    assert b.text() == b.message
    with schemas.language("zh_CN"):
        zh = b.text()
        assert zh != b.message and "0.73" in zh and "1.00" in zh and HAN.search(zh)
        assert code_label("AMOUNT_MISMATCH").startswith("AMOUNT_MISMATCH ")
        assert HAN.search(code_label("AMOUNT_MISMATCH"))
        assert label("fund_account", "income") != "income"
        assert label("status", "unknown-status") == "unknown-status"
    assert code_label("AMOUNT_MISMATCH") == "AMOUNT_MISMATCH"
    assert label("fund_account", "income") == "income"


def test_evidence_and_ids_do_not_depend_on_the_language() -> None:
    def make() -> Break:
        return Break.make("LEDGER_INTEGRITY", (), {}, "ledger",
                          msg("{detail}; this run restored it", detail="x"), 0, key=(),
                          entry_hashes=[])

    en = make()
    with schemas.language("zh_CN"):
        zh = make()
    assert en == zh


def test_a_translation_that_does_not_fit_falls_back_to_english() -> None:
    b = Break.make("MISSING_VOUCHER", ("X",), {}, "refs", msg("no such template {a}", a="1"))
    with schemas.language("zh_CN"):
        assert b.text() == "no such template 1"
    b2 = Break.make("MISSING_VOUCHER", ("X",), {}, "refs", "plain words")
    assert b2.template == "" and b2.params == {}
    with schemas.language("zh_CN"):
        assert b2.text() == "plain words"


def test_expected_items_keep_their_window_in_both_languages() -> None:
    e = Expected(code="UNSETTLED_EVENT", records=("E1",), amounts={}, field="amount",
                 until="2026-12-10", message="x of 1.00 (window until 2026-12-10)",
                 template="{kind} {record} of {amount} has no movement settling it",
                 params={"kind": "benefit_payment", "record": "E1", "amount": "1.00"})
    assert e.text().endswith("(window until 2026-12-10)")
    with schemas.language("zh_CN"):
        assert "2026-12-10" in e.text() and HAN.search(e.text())


def _commands() -> list[list[str]]:
    import importlib

    import click

    from cli import COMMANDS, bfa

    for module, _first in COMMANDS.values():
        importlib.import_module(module)
    out: list[list[str]] = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        out.append(path)
        if isinstance(cmd, click.Group):
            for name, sub in sorted(cmd.commands.items()):
                walk(sub, [*path, name])

    walk(bfa, [])
    return out


def test_every_help_in_chinese_fits_80_columns_and_is_chinese() -> None:
    from cli._render import width

    for path in _commands():
        out = ok("--lang", "zh_CN", *path, "--help", env={"COLUMNS": "80"}).stdout
        assert out.startswith("用法："), (path, out[:80])
        english = set(ok(*path, "--help", env={"COLUMNS": "80"}).stdout.splitlines())
        # an example command line is shown as written, in either language
        wide = [ln for ln in out.splitlines() if width(ln) > 80 and ln not in english]
        assert not wide, (path, wide)
        assert HAN.search(out.split("\n\n", 2)[1]), (path, out[:300])  # its own help text


@pytest.mark.parametrize(("text", "width", "lines"), [
    ("hello world this is english", 12, ["hello world", "this is", "english"]),
    ("解除凭证记录的保全冻结", 10, ["解除凭证记", "录的保全冻", "结"]),
    # closing punctuation never starts a line: the character it closes moves down with it
    ("一二三四五。六", 10, ["一二三四", "五。六"]),
    ("见 bfa breaks show 命令", 14, ["见 bfa breaks", "show 命令"]),
])
def test_help_text_breaks_between_chinese_characters(text: str, width: int,
                                                     lines: list[str]) -> None:
    assert _i18n.fill(text, width) == lines


@pytest.fixture(scope="module")
def zh_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The whole demo, run by an officer who reads Chinese: every step, fault and report
    of the default demo, over 200 insured persons instead of 3,000 (what is said, and in
    which language, does not depend on how many; tests/cli/test_cli_blackbox.py runs it
    over 50; 30 s less)."""
    out = tmp_path_factory.mktemp("zh") / "demo"
    res = ok("--lang", "zh_CN", "demo", "--out", str(out), "--persons", "200",
             env={"COLUMNS": "80"})
    return out, res.stdout


def test_the_demo_reads_in_chinese(zh_demo: tuple[Path, str]) -> None:
    _out, text = zh_demo
    steps = [ln for ln in text.splitlines() if ln.startswith("== ")]
    assert len(steps) >= 11 and all(HAN.search(ln) for ln in steps), steps
    for said in ("差异", "风险金额", "重复支付", "校验", "证据包"):
        assert said in text, said
    assert "DUPLICATE_PAYMENT 重复支付" in text  # codes beside their names


def test_json_is_the_same_in_both_languages(zh_demo: tuple[Path, str]) -> None:
    out, _text = zh_demo
    home = ["--home", str(out / ".bfa")]
    for args in (["breaks", "list"], ["balance"]):
        zh = ok("--lang", "zh_CN", *args, *home, "--json", code=(0, 1)).stdout
        en = ok("--lang", "en", *args, *home, "--json", code=(0, 1)).stdout
        assert zh == en, args
    zh_report = json.loads(ok("--lang", "zh_CN", "reconcile", *home, "--json",
                              code=(0, 1)).stdout)
    en_report = json.loads(ok("--lang", "en", "reconcile", *home, "--json", code=(0, 1)).stdout)
    assert zh_report["breaks"] == en_report["breaks"]
    assert zh_report["summary"] == en_report["summary"]
    def words(b: dict[str, object]) -> str:  # the message without its data (a list's source)
        text = str(b["message"])
        for value in dict(b.get("params") or {}).values():  # type: ignore[call-overload]
            text = text.replace(str(value), "")
        return text

    assert all(words(b).isascii() or "四性" in b["message"] for b in zh_report["breaks"])


def test_reports_and_csv_in_chinese(zh_demo: tuple[Path, str], tmp_path: Path) -> None:
    out, _text = zh_demo
    home = ["--home", str(out / ".bfa")]
    csv_zh = ok("--lang", "zh_CN", "reconcile", *home, "--csv", code=(0, 1)).stdout
    head = csv_zh.lstrip("\ufeff").splitlines()[0]
    assert HAN.search(head) and csv_zh.startswith("\ufeff")
    page = tmp_path / "r.html"
    ok("--lang", "zh_CN", "reconcile", *home, "--html", str(page), code=(0, 1))
    html = page.read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in html and "差异" in html
    ok("--lang", "en", "reconcile", *home, "--html", str(page), code=(0, 1))
    assert '<html lang="en">' in page.read_text(encoding="utf-8")


def test_a_refused_line_is_said_in_chinese_and_rejected_in_english(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok("init", *h(home), "--origin", "agency.example/1")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({
        "type": "business.benefit_payment", "id": "X1", "region": "440100",
        "occurred_at": "2026-11-01T10:00:00+08:00", "person_id": "110101199001011234",
        "insurance": "pension", "period": "2026-11", "amount": 3456.78,
        "account": "6222"}) + "\n", encoding="utf-8")
    res = invoke("--lang", "zh_CN", "ingest", *h(home), str(bad))
    assert res.exit_code == 2, res.output
    assert "金额须为字符串" in res.stderr and "bad.jsonl:1: amount" in res.stderr
    rej = tmp_path / "rej.jsonl"
    res = invoke("--lang", "zh_CN", "ingest", *h(home), str(bad), "--reject-file", str(rej))
    assert res.exit_code == 1 and "拒收" in res.output, res.output
    reason = json.loads(rej.read_text(encoding="utf-8").splitlines()[0])["reason"]
    assert reason == 'money must be a string like "3456.78", not a number'
