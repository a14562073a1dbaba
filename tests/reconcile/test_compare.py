"""``bfa compare`` (issue 20 item 2): outside death lists read strictly, normalised,
pseudonymised in memory and recorded as ``control.compare`` entries; read back as the
death list the entitlement rules use. Both backends for what touches the ledger."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import bfa
from ledger import BatchRefusedError, InputError, Ledger, control_records, party_pseudonym
from reconcile import compare_list, comparisons, death_list
from reconcile.lists import _compare as compare_module
from reconcile.lists import normalise_id, read_list

TODAY = date(2026, 12, 7)


def _file(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "deaths.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


@pytest.mark.parametrize(("given", "want"), [
    ("11010519491231002X", "11010519491231002X"),
    ("11010519491231002x", "11010519491231002X"),
    (" 110105194912310021 ", "110105194912310021"),  # kept as written: not verified
    ("110105491231002", "11010519491231002X"),  # 15 digits: century and check character
    ("130503670401001", "130503196704010016"),
    ("1101051949123100", None), ("11010519491231002Y", None), ("１１０１０５", None), ("", None),
])
def test_identity_numbers_are_normalised(given: str, want: str | None) -> None:
    assert normalise_id(given) == want


def test_a_list_is_read_with_or_without_header_bom_and_in_gb18030(tmp_path: Path) -> None:
    utf8 = read_list(_file(tmp_path, "\ufeffperson_id,date\n11010519491231002x,2026-11-03\n\n"
                                     "110105491231002,20261103\n130503670401001,2026/10/31\n"),
                     today=TODAY)
    assert utf8.pairs == [("11010519491231002X", "2026-11-03"),
                          ("130503196704010016", "2026-10-31")]
    assert (utf8.lines, utf8.header, utf8.encoding) == (3, True, "utf-8")
    gb = read_list(_file(tmp_path, "身份证号码,死亡日期\r\n11010519491231002X,2026-11-03\r\n",
                         "gb18030", "gongan.csv"), today=TODAY)
    assert (gb.pairs, gb.header, gb.encoding) == ([("11010519491231002X", "2026-11-03")], True,
                                                  "gb18030")
    bare = read_list(_file(tmp_path, "11010519491231002X,2026-11-03"), today=TODAY)
    assert bare.header is False and bare.lines == 1


def test_a_bad_list_is_refused_whole_naming_lines_and_fields(tmp_path: Path) -> None:
    path = _file(tmp_path, "person_id,date\n11010519491231002X,2026-11-03\nABC,2026-11-03\n"
                           "11010519491231002X,2026-13-01\n11010519491231002X,2027-01-01\n"
                           "11010519491231002X,2026-11-03,extra\n11010519491231002X,2026-1-3\n")
    with pytest.raises(BatchRefusedError) as err:
        read_list(path, today=TODAY)
    got = [(p.line, p.field) for p in err.value.problems]
    assert got == [(3, "person_id"), (4, "date"), (5, "date"), (6, ""), (7, "date")]
    assert "after today" in err.value.problems[2].reason
    assert str(path) in str(err.value)
    with pytest.raises(InputError, match="holds no line"):
        read_list(_file(tmp_path, "person_id,date\n\n"), today=TODAY)


@pytest.mark.parametrize(("line", "field", "why"), [
    ("11010519491231002X,1800-01-01", "date", "before 1900"),
    ("11010519491231002X,1949-12-30", "date", "before the date of birth in the identity "
                                              "number (1949-12-31)"),
    ("11010519491231002X\t2026-11-03", "", "separated by a tab, not a comma"),
    ("11010519491231002X；2026-11-03", "", "separated by '；', not a comma"),
    ("11010519491231002X", "", "1 columns"),
])
def test_implausible_dates_and_wrong_separators_are_named(tmp_path: Path, line: str,
                                                          field: str, why: str) -> None:
    """A mistyped year would move a death by decades, for good (a list stays in force): a
    date before 1900 or before the birth date the number holds is refused; a file
    separated by something else than commas is not taken for a header."""
    with pytest.raises(BatchRefusedError) as err:
        read_list(_file(tmp_path, line + "\n"), today=TODAY)
    (p,) = err.value.problems
    assert (p.line, p.field) == (1, field) and why in p.reason
    assert "list refused, nothing recorded" in str(err.value)
    with pytest.raises(InputError, match="not UTF-8"):
        read_list(_bytes(tmp_path, b"\xff\xfe\x00"), "utf-8", today=TODAY)


def _bytes(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "raw.csv"
    p.write_bytes(data)
    return p


def test_a_compared_list_is_recorded_as_pseudonyms_only(led: Ledger, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compare_module, "PAIRS_PER_ENTRY", 2)
    path = _file(tmp_path, "11010519491231002X,2026-11-03\n130503670401001,2026-10-31\n"
                           "11010519491231002x,2026-11-01\n440300199001011234,2026-09-30\n"
                           "11010519491231002X,2026-11-03\n")
    size = led.size()
    done = compare_list(led, path, source="民政局", today=TODAY)
    assert (done.lines, done.count, done.persons, done.known) == (5, 4, 3, 0)
    assert len(done.seqs) == 2 and led.size() == size + 2
    with led.store.reader() as conn:
        recs = [r for _s, r in control_records(conn, "compare")]
        (c,) = comparisons(conn)
        deaths = death_list(led.store, conn)
    assert [(r["part"], r["parts"], len(r["pairs"])) for r in recs] == [(1, 2, 2), (2, 2, 2)]
    assert {r["source"] for r in recs} == {"民政局"} and recs[0]["user"]
    assert recs[0]["digest"] == done.digest and c.comparison == done.comparison
    assert c.pairs == sorted(c.pairs) and len(c.pairs) == 4
    ps = party_pseudonym(led, "11010519491231002X")
    assert (ps, "2026-11-01") in c.pairs and (ps, "2026-11-03") in c.pairs
    # the earliest date a list gives
    assert deaths[ps] == (date(2026, 11, 1) - date(1970, 1, 1)).days
    assert len(deaths) == 3
    leaves = json.dumps(recs)
    assert "11010519491231002" not in leaves and "440300199001011234" not in leaves
    assert led.verify().ok


def test_the_same_file_again_records_nothing(led: Ledger, tmp_path: Path) -> None:
    path = _file(tmp_path, "11010519491231002X,2026-11-03\n")
    first = compare_list(led, path, source="a", today=TODAY)
    size = led.size()
    again = compare_list(led, path, source="b", today=TODAY)
    assert again.already and not first.already and led.size() == size
    assert (again.comparison, again.seqs, again.source) == (first.comparison, first.seqs, "a")


def test_a_refused_list_appends_nothing(led: Ledger, tmp_path: Path) -> None:
    size = led.size()
    with pytest.raises(BatchRefusedError):
        compare_list(led, _file(tmp_path, "11010519491231002X,2026-11-03\nX,Y\n"), today=TODAY)
    with pytest.raises(InputError, match="--source"):
        compare_list(led, _file(tmp_path, "11010519491231002X,2026-11-03\n"), source=" ",
                     today=TODAY)
    assert led.size() == size


def _cli(ledger_home: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(bfa, ["compare", "--home", ledger_home["home"],
                                    "--db", ledger_home["db"], *args])


def test_cli(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    path = _file(tmp_path, "person_id,date\n11010519491231002X,2026-11-03\n")
    res = _cli(ledger_home, str(path), "--kind", "death", "--source", "public-security",
               "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert (out["count"], out["persons"], out["source"]) == (1, 1, "public-security")
    res = _cli(ledger_home, str(path), "--kind", "death")
    assert res.exit_code == 0 and "deaths.csv" in res.output
    bad = _file(tmp_path, "11010519491231002X,someday\n", name="bad.csv")
    res = _cli(ledger_home, str(bad), "--kind", "death")
    assert res.exit_code == 2 and "bad.csv:1: date" in res.output
    res = CliRunner().invoke(bfa, ["compare", "--help"])
    assert res.exit_code == 0 and "Example" in res.output
    assert max(len(line) for line in res.output.splitlines()) <= 80
