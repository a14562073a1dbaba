"""The ledger home: where the database, the keys and the voucher files live.

Layout (``./.bfa`` unless ``--home`` / ``BFA_HOME`` says otherwise)::

    .bfa/
      ledger.db        SQLite database (the embedded default)
      config.json      origin name and, optionally, the database URL
      keys/signing.key C2SP note signer key (mode 0600)
      keys/secret.key  ledger secret for pseudonyms (mode 0600)
      archive/         voucher files, content-addressed (the archive's store)

Keys never enter the database. ``BFA_SIGNING_KEY`` and ``BFA_SECRET_KEY`` name
other key files; ``BFA_DATABASE_URL`` (or ``--db``) selects PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from ledger._errors import ConfigError, printable
from ledger._note import Signer, Verifier

DEFAULT_HOME = ".bfa"
_ORIGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)*")
_CONFIG_KEYS = ("origin", "database_url")


@dataclass(frozen=True, slots=True)
class Home:
    """A resolved ledger home directory and the settings found in it."""

    path: Path
    db_url: str
    origin: str | None
    signing_key_path: Path
    secret_key_path: Path

    @property
    def archive_dir(self) -> Path:
        return self.path / "archive"

    def require_origin(self) -> str:
        """The ledger's origin; :class:`ConfigError` when this is not an initialised home."""
        if self.origin is None:
            raise ConfigError(f"{self.path} is not a ledger home; run 'bfa init' first")
        return self.origin

    def signer(self) -> Signer:
        """Load the signing key; :class:`ConfigError` names the file when unusable."""
        text = _read_key(self.signing_key_path, "signing key")
        try:
            signer = Signer.from_text(text)
        except Exception as e:
            raise ConfigError(f"{self.signing_key_path}: not a note signer key: {e}") from e
        if self.origin is not None and signer.name != self.origin:
            raise ConfigError(  # FORMAT.md §5.1: the origin is also the signing key's name
                f"{self.signing_key_path}: the key is named {signer.name!r}, not this "
                f"ledger's origin {self.origin!r}")
        return signer

    def verifier(self) -> Verifier:
        return self.signer().verifier()

    def secret(self) -> bytes:
        """Load the ledger secret used for pseudonyms and content digests."""
        text = _read_key(self.secret_key_path, "ledger secret").strip()
        try:
            raw = bytes.fromhex(text)
        except ValueError as e:
            raise ConfigError(f"{self.secret_key_path}: the ledger secret must be hex") from e
        if len(raw) < 32:
            raise ConfigError(f"{self.secret_key_path}: the ledger secret must be 32 bytes")
        return raw


def resolve_home(home: str | None = None, db_url: str | None = None) -> Home:
    """Find the home and database from arguments, then the environment, then defaults."""
    path = Path(home or os.environ.get("BFA_HOME") or DEFAULT_HOME).expanduser()
    config: dict[str, object] = {}
    cfg_file = path / "config.json"
    if cfg_file.is_file():
        try:
            loaded = json.loads(cfg_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{cfg_file}: unreadable configuration: {e}") from e
        config = _check_config(cfg_file, loaded)
    url = db_url or os.environ.get("BFA_DATABASE_URL") or str(config.get("database_url") or "")
    if not url:
        url = f"sqlite:///{(path / 'ledger.db').resolve()}"
    origin = config.get("origin")
    keys = path / "keys"
    return Home(
        path=path,
        db_url=url,
        origin=str(origin) if origin else None,
        signing_key_path=Path(os.environ.get("BFA_SIGNING_KEY") or keys / "signing.key"),
        secret_key_path=Path(os.environ.get("BFA_SECRET_KEY") or keys / "secret.key"),
    )


def _check_config(cfg_file: Path, loaded: object) -> dict[str, object]:
    """``config.json`` as FORMAT.md §5.4 gives it: an object with ``origin`` and,
    optionally, ``database_url``, both strings; anything else is refused by name (a
    misspelt ``database_url`` must not quietly send commands to the default SQLite file)."""
    if not isinstance(loaded, dict):
        raise ConfigError(f"{cfg_file}: must be a JSON object "
                          '{"origin": "...", "database_url": "..." (optional)}')
    unknown = sorted(set(loaded) - set(_CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{cfg_file}: unknown setting {printable(unknown[0])!r} "
                          f"(known: {', '.join(_CONFIG_KEYS)})")
    for key in _CONFIG_KEYS:
        value = loaded.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{cfg_file}: {key} must be a string")
    origin = loaded.get("origin")
    if not origin:
        raise ConfigError(f"{cfg_file}: no origin (the ledger's name, set by 'bfa init')")
    if not _ORIGIN_RE.fullmatch(str(origin)):
        raise ConfigError(f"{cfg_file}: origin {printable(str(origin))!r} is not a ledger "
                          "name like 'agency.example/ledger' (letters, digits, ._~-/)")
    return loaded


def init_home(home: Home, origin: str) -> Home:
    """Create the home directory, its configuration and both keys (never overwriting)."""
    if not _ORIGIN_RE.fullmatch(origin):
        raise ConfigError(
            f"origin {origin!r} must look like 'agency.example/ledger' (letters, digits, ._~-/)"
        )
    if home.origin and home.origin != origin:
        raise ConfigError(f"{home.path} already belongs to ledger {home.origin!r}, not {origin!r}")
    home.path.mkdir(parents=True, exist_ok=True)
    (home.path / "archive").mkdir(exist_ok=True)
    cfg_file = home.path / "config.json"
    if not cfg_file.exists():
        cfg_file.write_text(json.dumps({"origin": origin}, indent=2) + "\n", encoding="utf-8")
    if not home.signing_key_path.exists():
        _write_secret_file(home.signing_key_path, Signer.generate(origin).to_text() + "\n")
    if not home.secret_key_path.exists():
        _write_secret_file(home.secret_key_path, secrets.token_hex(32) + "\n")
    ready = resolve_home(str(home.path), home.db_url)
    ready.signer()  # keys that were there already must be usable (mode 0600, named origin)
    ready.secret()  # before anything is written to the database
    return ready


def _write_secret_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _read_key(path: Path, what: str) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no {what}; run 'bfa init' first") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the {what}: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: the {what} is not text (not a key file)") from e
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: the {what} grants access to group or others; run: chmod 600 {path}")
    folder = path.parent
    try:
        dir_mode = folder.stat().st_mode
    except OSError as e:
        raise ConfigError(f"{folder}: cannot read the {what}'s directory: {e}") from e
    if dir_mode & (stat.S_IWGRP | stat.S_IWOTH) and not dir_mode & stat.S_ISVTX:
        # whoever may write the directory may swap the key file for one of their own
        raise ConfigError(f"{folder}: the {what}'s directory is writable by group or "
                          f"others, who could replace the key; run: chmod go-w {folder}")
    return text.strip()
