"""Key backups (FORMAT.md §5.6): every key a home holds, in one file sealed with a
passphrase, and the way back into a home.

The keys never enter the database, so a lost home loses them: the signing key (no new
checkpoint under the ledger's name), the ledger secret (no pseudonym matches any more)
and the vault key (no personal value opens). ``bfa key backup`` writes them to one file,
encrypted with AES-256-GCM under a key derived from a passphrase with scrypt (RFC 7914),
bound to the ledger's origin by the associated data; ``bfa key restore`` writes them back
into a home, never over a different key, and checks them against the database's check
values and signed checkpoints before it says the home is whole.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ledger._errors import ConfigError, InputError
from ledger._home import Home
from schemas import N_
from schemas import gettext as _

FORMAT = "bfa-key-backup/v1"
SCRYPT_N = 2**15
"""scrypt's cost: 32 MiB of memory and about a tenth of a second a try (RFC 7914 §2)."""
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSPHRASE = 12
KEY_NAMES = ("signing", "secret", "vault", "verifier")
"""The keys a backup may hold, in the order they are listed."""


@dataclass(frozen=True)
class KeySet:
    """The key texts of one home (as their files hold them, without the newline)."""

    origin: str
    keys: dict[str, str]


def home_keys(home: Home) -> KeySet:
    """Every key ``home`` holds, each checked as loading it checks it."""
    origin = home.require_origin()
    keys: dict[str, str] = {"verifier": home.verifier().to_text()}
    if home.signing_key_path.exists():
        keys["signing"] = home.signer().to_text()
    if home.secret_key_path.exists():
        keys["secret"] = home.secret().hex()
    if home.vault_key_path is not None and home.vault_key_path.exists():
        keys["vault"] = home.vault_key().hex()
    return KeySet(origin, {k: keys[k] for k in KEY_NAMES if k in keys})


def check_passphrase(passphrase: str) -> str:
    if len(passphrase) < MIN_PASSPHRASE:
        raise InputError(_("the passphrase must be at least {count} characters").format(
            count=MIN_PASSPHRASE))
    return passphrase


def _derive(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(
        passphrase.encode())


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _aad(origin: str) -> bytes:
    return FORMAT.encode() + b"\x00" + origin.encode()


def seal_backup(keys: KeySet, passphrase: str, created_at: str) -> str:
    """The backup file's text (FORMAT.md §5.6)."""
    salt, nonce = os.urandom(16), os.urandom(12)
    plain = json.dumps({"origin": keys.origin, "keys": keys.keys}, sort_keys=True,
                       separators=(",", ":")).encode()
    sealed = AESGCM(_derive(check_passphrase(passphrase), salt)).encrypt(
        nonce, plain, _aad(keys.origin))
    return json.dumps({
        "format": FORMAT,
        "origin": keys.origin,
        "created_at": created_at,
        "keys": list(keys.keys),
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                "salt": _b64(salt)},
        "nonce": _b64(nonce),
        "ciphertext": _b64(sealed),
    }, indent=2) + "\n"


def open_backup(text: str, passphrase: str, name: str) -> KeySet:
    """The keys in a backup file's ``text``; :class:`InputError` naming ``name`` when it
    is not a backup, or the passphrase (or the file) is wrong."""
    try:
        doc: Any = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InputError(_("{file}: not a bfa key backup (not a {format} file)").format(
                file=name, format=FORMAT))
        kdf = doc["kdf"]
        if kdf.get("name") != "scrypt" or not all(
                type(kdf.get(k)) is int for k in ("n", "r", "p")):
            raise InputError(_("{file}: not a bfa key backup (unknown key derivation)").format(
                file=name))
        n, r, p = kdf["n"], kdf["r"], kdf["p"]
        if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
            raise InputError(_("{file}: not a bfa key backup (scrypt settings outside what bfa "
                               "writes and reads (n a power of two up to 2^20, r 1–32, p "
                               "1–16))").format(file=name))
        origin = str(doc["origin"])
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(doc["nonce"], validate=True)
        sealed = base64.b64decode(doc["ciphertext"], validate=True)
    except ValueError as e:  # not JSON, not base64: the library's words
        raise InputError(_("{file}: not a bfa key backup ({reason})").format(
            file=name, reason=e)) from e
    except (KeyError, TypeError, AttributeError) as e:
        raise InputError(_("{file}: not a bfa key backup (a member is missing or of the wrong "
                           "type)").format(file=name)) from e
    key = Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(
        passphrase.encode())
    try:
        plain = json.loads(AESGCM(key).decrypt(nonce, sealed, _aad(origin)))
    except (InvalidTag, ValueError) as e:
        raise InputError(_("{file}: wrong passphrase, or the backup was changed").format(
            file=name)) from e
    keys = plain.get("keys") if isinstance(plain, dict) else None
    if (not isinstance(keys, dict) or plain.get("origin") != origin
            or not set(keys) <= set(KEY_NAMES) or "verifier" not in keys
            or not all(isinstance(v, str) for v in keys.values())):
        raise InputError(_("{file}: the backup's content is not a key set").format(file=name))
    return KeySet(origin, {k: keys[k] for k in KEY_NAMES if k in keys})


_BACKUP_KEY_DIFFERS = {
    "signing": N_("{path}: holds another key than the backup's signing key; move it away "
                  "first (nothing was written)"),
    "secret": N_("{path}: holds another key than the backup's secret key; move it away "
                 "first (nothing was written)"),
    "vault": N_("{path}: holds another key than the backup's vault key; move it away first "
                "(nothing was written)"),
    "verifier": N_("{path}: holds another key than the backup's verifier key; move it away "
                   "first (nothing was written)"),
}
"""What :func:`restore_keys` says for each of :data:`KEY_NAMES` (translated where said)."""


def key_paths(home: Home) -> dict[str, Path]:
    """Where ``home`` keeps each key."""
    assert home.verifier_key_path is not None and home.vault_key_path is not None
    return {"signing": home.signing_key_path, "secret": home.secret_key_path,
            "vault": home.vault_key_path, "verifier": home.verifier_key_path}


def restore_keys(home: Home, keys: KeySet, db_url: str | None) -> list[Path]:
    """Write ``keys`` into ``home`` (its configuration too when it has none); returns the
    files written, to be removed if the check against the database fails. Nothing is
    written when any key already there differs from the backup's, or when the home's
    SQLite database does not exist (a restore puts keys beside a ledger, it makes none)."""
    from ledger._files import make_dir, perms_for, write_atomic
    from ledger._home import write_key_file

    if home.origin is not None and home.origin != keys.origin:
        raise ConfigError(_("{home} belongs to ledger {origin}; the backup is of {backup}")
                          .format(home=home.path, origin=repr(home.origin),
                                  backup=repr(keys.origin)))
    url = db_url or home.db_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise ConfigError(_("no ledger database at {path}; give the ledger's database with "
                            "--db URL (nothing was written)").format(
            path=url.removeprefix("sqlite:///")))
    paths = key_paths(home)
    todo = []
    for name, path in paths.items():
        if name not in keys.keys:
            continue
        if path.exists() or path.is_symlink():
            if path.read_text(encoding="utf-8").strip() != keys.keys[name]:
                raise ConfigError(_(_BACKUP_KEY_DIFFERS[name]).format(path=path))
            continue
        todo.append((name, path))
    perms = home.perms if home.origin is not None else perms_for(None)
    written: list[Path] = []
    make_dir(home.path, perms)
    cfg = home.path / "config.json"
    if not cfg.exists():
        config = {"origin": keys.origin, **({"database_url": db_url} if db_url else {})}
        write_atomic(cfg, json.dumps(config, indent=2) + "\n", perms)
        written.append(cfg)
    for name, path in todo:
        write_key_file(path, keys.keys[name] + "\n", perms)
        written.append(path)
    return written


__all__ = [
    "FORMAT",
    "KEY_NAMES",
    "KeySet",
    "check_passphrase",
    "home_keys",
    "key_paths",
    "open_backup",
    "restore_keys",
    "seal_backup",
]
