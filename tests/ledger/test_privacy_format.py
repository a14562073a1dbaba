"""Pseudonyms, commitments and content digests follow docs/FORMAT.md §4 byte for byte.

Each value is recomputed here from the formula in FORMAT.md with the standard library
alone (a second, independent reading of the spec), so a faster implementation in
``ledger/_privacy.py`` cannot drift from the documented bytes.
"""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger._privacy import HmacSha256, Pseudonymizer, commitment

SECRET = bytes(range(32))


def _spec_pseudonym(cls: str, value: str) -> str:
    msg = b"bfa-pseudonym/v1" + b"\x00" + cls.encode() + b"\x00" + value.encode("utf-8")
    return "ps1:" + hmac.new(SECRET, msg, hashlib.sha256).hexdigest()[:32]


def test_pseudonyms_follow_format_4_1() -> None:
    ps = Pseudonymizer(SECRET)
    for field, cls in (("person_id", "party"), ("payer_id", "party"),
                       ("employer_id", "party"), ("account", "account"),
                       ("payee_account", "account"), ("name", "name")):
        for value in ("44010019900101123X", "6222020200112233445", "王伟", "a\x00b"):
            assert ps.pseudonym(field, value) == _spec_pseudonym(cls, value)
            assert ps.pseudonym(field, value) == _spec_pseudonym(cls, value)  # cached


def test_protect_commits_with_a_fresh_salt_per_field() -> None:
    record = {"type": "business.benefit_payment", "id": "BP-1", "person_id": "P1",
              "account": "6222020200112233445", "name": "王伟"}
    payload, rows = Pseudonymizer(SECRET).protect(record)
    assert sorted(r.field for r in rows) == ["account", "name", "person_id"]
    assert len({r.salt for r in rows}) == 3 and all(len(r.salt) == 16 for r in rows)
    for r in rows:
        spec = hashlib.sha256(b"bfa-commit/v1\x00" + r.salt + r.clear.encode()).hexdigest()
        assert payload["_commitments"][r.field] == spec == commitment(r.salt, r.clear)
        assert r.subject == _spec_pseudonym("party", "P1")


def test_content_digest_is_keyed_sha256() -> None:
    body = b'{"id":"BP-1"}'
    want = hmac.new(SECRET, b"bfa-content/v1\x00" + body, hashlib.sha256).digest()
    assert Pseudonymizer(SECRET).content_digest(body) == want


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=150), st.binary(max_size=300))
def test_hmac_with_hashed_key_states_is_rfc2104(key: bytes, msg: bytes) -> None:
    assert HmacSha256(key)(msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_salts_stay_fresh_across_random_blocks() -> None:
    """Salts come from blocks of random bytes: none repeats across block boundaries."""
    ps = Pseudonymizer(SECRET)
    salts = []
    for i in range(5000):  # three salts a record: more than two 64 KiB blocks
        _, rows = ps.protect({"type": "business.benefit_payment", "id": f"BP-{i}",
                              "person_id": "P1", "account": "A1", "name": "N"})
        salts += [r.salt for r in rows]
    assert all(len(s) == 16 for s in salts)
    assert len(set(salts)) == len(salts) == 15000
