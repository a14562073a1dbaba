"""The camt.053 and MT940 parsers on every file of ``tests/vectors/bank/``.

camt.053: each ``.xml`` against the ``.json`` beside it (genkgo/camt's object model:
amounts in minor units, signed by direction). MT940: each ``.sta`` against the ``.yml``
beside it (the ``mt-940`` library's expected parse) — first that the pinned library
still gives that parse, then that our statements carry the same entries.

Exceptions, and why:

- ``camt053.v2.wrong.xml``: malformed on purpose (no ``Stmt``): a clear InputError.
- ``camt053.v2.minimal/v3/v4/v8``: closing balance in SEK (and ``v4``/``v8`` dated before
  the entry): the balances do not add up; other currencies, so refused on import.
- ``camt053.v2.five.decimals``: three-decimal amounts (``8.850``): equal in value to the
  JSON's minor units; EUR, so refused on import. ``camt053.v2.multi.statement.json``
  lists only the second statement's entry (the first is a ``__RECURSIVITY__`` stub):
  only what the JSON holds is compared.
- MT940 fragments without ``:20:`` (``amount_formats``, ``currency_in_25``, ``empty_86``,
  ``empty_entry_date``, ``missing_crlf_at_end``, cmxl ``account_balance_*``,
  ``account_identification_*``, ``available_balance``, ``closing_balance``,
  ``statement_details``, ``statement_line``, ``statement_number``) and without ``:25:``
  (``empty_line``, cmxl ``reference``): not statements; our parser refuses them with an
  InputError naming the file (the library's parse of them is still checked).
- ``sepa_snippet_broken``: the library reads a ``:86:`` fragment as the account; parsed,
  its balances do not add up (negative case). Several real files (``abnamro``, ``ing``,
  ``knab``, ``postfinance``, ``rabobank``, ``triodos``, two ``sepa_mt9401`` messages)
  are excerpts whose balances do not add up either; none is CNY.
- References, where the ``.yml`` and the pinned library disagree: the ``.yml`` files
  (library tests at d3f8b44) keep ``:61:``'s ``customer//bank`` reference whole in
  ``customer_reference``, cut to 16 characters (``NONREF//07247103``); mt-940 5.1.1
  splits it into ``customer_reference`` and ``bank_reference`` (``0724710333343453``)
  in ``sepa_mt9401``, ``sepa_snippet``, ``sepa_snippet_broken``, cmxl ``mt940``,
  ``knab`` and ``postfinance``. There the joined reference must start with the
  ``.yml``'s; our entries follow the pinned library.
- ``rabobank-iban``: two messages share ``:20:``/``:28C:``; import disambiguates the id.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import mt940
import pytest
import yaml  # type: ignore[import-untyped]

from ledger import InputError
from reconcile.bank._camt import parse_camt053
from reconcile.bank._mt940 import parse_mt940
from tests._vectors import vectors_dir

BANK = vectors_dir() / "bank"
CAMT = sorted((BANK / "camt053").glob("*.xml"))
STA = sorted((BANK / "mt940").glob("*/*.sta"))
MALFORMED = {"camt053.v2.wrong.xml"}
FRAGMENTS = {
    "betterplace/amount_formats", "betterplace/currency_in_25", "betterplace/empty_86",
    "betterplace/empty_entry_date", "betterplace/missing_crlf_at_end", "betterplace/empty_line",
    "cmxl/account_balance_credit", "cmxl/account_balance_debit",
    "cmxl/account_identification_iban", "cmxl/account_identification_legacy",
    "cmxl/available_balance", "cmxl/closing_balance", "cmxl/reference",
    "cmxl/statement_details", "cmxl/statement_line", "cmxl/statement_number",
}


def _name(p: Path) -> str:
    return f"{p.parent.name}/{p.stem}"


# --- camt.053 --------------------------------------------------------------------------


def _day(v: dict[str, Any] | None) -> date | None:
    return None if v is None else date.fromisoformat(str(v["0"])[:10])


@pytest.mark.parametrize("path", CAMT, ids=lambda p: p.name)
def test_camt053_vector(path: Path) -> None:
    if path.name in MALFORMED:
        with pytest.raises(InputError, match=str(path)):
            parse_camt053(path)
        return
    import json

    expected = json.loads(path.with_suffix(".json").read_text())
    stmts = {s.id: s for s in parse_camt053(path)}
    assert stmts
    for e in expected["getEntries"]:
        rec = e["getRecord"]
        st = stmts[rec["getId"]]
        ours = st.entries[e["getIndex"]]
        minor = int(e["getAmount"]["getAmount"])
        assert ours.amount * 100 * (1 if ours.credit else -1) == minor
        assert ours.currency == e["getAmount"]["getCurrency"]["getCode"]
        assert ("CRDT" if ours.credit else "DBIT") == e["getCreditDebitIndicator"]
        assert ours.booking_date == _day(e["getBookingDate"])
        assert ours.value_date == _day(e["getValueDate"])
        assert ours.acct_svcr_ref == e["getAccountServicerReference"]
        assert st.account == rec["getAccount"]["getIdentification"]
        assert st.sequence == rec["getElectronicSequenceNumber"]
        bals = {b["getType"]: b for b in rec["getBalances"]}
        for kind, ours_bal in (("opening", st.opening), ("closing", st.closing)):
            b = bals[kind]
            assert ours_bal is not None
            assert ours_bal.amount * 100 == int(b["getAmount"]["getAmount"])
            assert ours_bal.currency == b["getAmount"]["getCurrency"]["getCode"]
            assert ours_bal.date == _day(b["getDate"])


def test_camt053_multi_statement_balances_add_up_and_chain() -> None:
    a, b = parse_camt053(BANK / "camt053" / "camt053.v2.multi.statement.xml")
    assert a.balances_add_up() and b.balances_add_up()
    assert a.closing is not None and b.opening is not None
    assert a.closing.amount == b.opening.amount


_V9 = b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.09"/>'


@pytest.mark.parametrize("bad", [b"", b"<Document/>", b"<a><b></a>",
                                 b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "y">]><d>&x;</d>',
                                 _V9])
def test_camt053_refuses_what_is_not_a_statement(tmp_path: Path, bad: bytes) -> None:
    f = tmp_path / "x.xml"
    f.write_bytes(bad)
    with pytest.raises(InputError, match=r"x\.xml"):
        parse_camt053(f)


# --- MT940 ----------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """Reads the library's ``!!python/...`` tags as plain data (nothing is executed)."""


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        d: dict[Any, Any] = {}
        yield d
        d.update(loader.construct_mapping(node, deep=True))
        return
    if isinstance(node, yaml.SequenceNode):
        yield (suffix, loader.construct_sequence(node, deep=True))
        return
    yield loader.construct_scalar(node)


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", _construct)


def _val(v: Any) -> Any:
    if isinstance(v, tuple) and v[0].endswith("decimal.Decimal"):
        return Decimal(v[1][0])
    if isinstance(v, tuple) and v[0].endswith("mt940.models.Date"):
        raw = v[1][0]
        return date(int.from_bytes(raw[:2], "big"), raw[2], raw[3])
    return v


def _expected(path: Path) -> dict[str, Any]:
    with path.with_suffix(".yml").open(encoding="utf-8") as f:
        loaded: dict[str, Any] = yaml.load(f, Loader=_Loader)
    return loaded


def _joined(customer: str | None, bank: str | None) -> str:
    return (customer or "").split("\n")[0] + (f"//{bank}" if bank else "")


def _tx(d: dict[str, Any]) -> tuple[Any, ...]:
    amount = d.get("amount")
    return (_val(amount["amount"]) if amount else None, amount["currency"] if amount else None,
            _val(d.get("date")), _val(d.get("entry_date")), d.get("bank_reference"),
            d.get("customer_reference"))


def _swift_sign(d: dict[str, Any]) -> tuple[Any, ...]:
    amount, *rest = _tx(d)
    return (-amount if d.get("status") == "RC" and amount else amount, *rest)


@pytest.mark.parametrize("path", STA, ids=_name)
def test_mt940_library_gives_the_expected_parse(path: Path) -> None:
    expected = _expected(path)
    got = mt940.parse(path)
    want = [_tx(t["data"]) for t in expected.get("transactions") or []]
    have = [(t.data["amount"].amount, t.data["amount"].currency, t.data.get("date"),
             t.data.get("entry_date"), t.data.get("bank_reference"),
             t.data.get("customer_reference")) for t in got]
    assert [h[:4] for h in have] == [w[:4] for w in want]
    for h, w in zip(have, want, strict=True):
        assert _joined(h[5], h[4]).startswith(_joined(w[5], w[4]))
    for key in ("final_opening_balance", "final_closing_balance"):
        if key in expected["data"]:
            bal = expected["data"][key]
            assert got.data[key].amount.amount == _val(bal["amount"]["amount"])
            assert got.data[key].amount.currency == bal["amount"]["currency"]
            assert got.data[key].date == _val(bal["date"])
    for key in ("transaction_reference", "account_identification", "statement_number"):
        if key in expected["data"]:
            assert got.data[key] == expected["data"][key]


@pytest.mark.parametrize("path", STA, ids=_name)
def test_mt940_statements_carry_the_librarys_entries(path: Path) -> None:
    if _name(path) in FRAGMENTS:
        with pytest.raises(InputError, match=str(path)):
            parse_mt940(path)
        return
    # the expected parses are the library's, which signs RC (a reversal of a credit:
    # money out, SWIFT field 61 subfield 3) as a credit; we book it as a debit
    want = [_swift_sign(t["data"]) for t in _expected(path).get("transactions") or []]
    lib = [(t.data.get("bank_reference"), t.data.get("customer_reference"))
           for t in mt940.parse(path)]
    stmts = parse_mt940(path)
    have = []
    for st in stmts:
        for e in st.entries:
            ref = e.entry_ref
            have.append((e.amount if e.credit else -e.amount, e.currency, e.value_date,
                         e.booking_date, e.acct_svcr_ref, ref))
    assert len(have) == len(want)
    for h, w, (bank, cust) in zip(have, want, lib, strict=True):
        assert h[:4] == w[:4]
        assert h[4] == (bank.strip() or None if bank else None)
        cust_ref = (cust or "").strip()
        assert h[5] == (None if cust_ref.upper() in ("", "NONREF") else cust_ref)


@pytest.mark.parametrize("details,iban", [
    ("166?00SEPA?20EREF+X?30COBADEFFXXX?31DE89370400440532013000?32Max", "DE89370400440532013000"),
    ("?20SVWZ+Rente?22IBAN+ DE89370400440532013000", "DE89370400440532013000"),
    ("/CNTP/DE89370400440532013000/COBADEFFXXX/Max Muster///", "DE89370400440532013000"),
    ("?31DE8937040044\n0532013000?32Max", "DE89370400440532013000"),  # split over lines
    ("?31DE89370400440532013001?32Max", None),  # mod-97 check fails
    ("IBAN DE89370400440532013000 with no marker", None),
    ("", None),
])
def test_counter_iban_from_86_details(details: str, iban: str | None) -> None:
    from reconcile.bank._mt940 import counter_iban

    assert counter_iban(details) == iban
