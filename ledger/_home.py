"""The ledger home: where the database, the keys and the voucher files live.

Layout (``./.bfa`` unless ``--home`` / ``BFA_HOME`` says otherwise)::

    .bfa/
      ledger.db        SQLite database (the embedded default)
      config.json      origin name and, optionally, the database URL
      keys/signing.key C2SP note signer key (mode 0600; the service duty's home)
      keys/verifier.key its verifier key (public; every home)
      keys/secret.key  ledger secret for pseudonyms (mode 0600; homes that ingest or forget)
      keys/vault.key   vault key sealing clear personal data (mode 0600; homes that ingest
                       or reveal)
      archive/         voucher files, content-addressed (the archive's store)

Keys never enter the database, and a home holds only the keys its duties need
(:func:`join_home`). ``BFA_SIGNING_KEY``, ``BFA_VERIFIER_KEY``, ``BFA_SECRET_KEY`` and
``BFA_VAULT_KEY`` name other key files; ``BFA_DATABASE_URL`` (or ``--db``) selects PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ledger._errors import ConfigError, printable
from ledger._files import (
    Perms,
    check_private_file,
    create_private,
    fix_mode,
    key_file_text,
    make_dir,
    perms_for,
    write_atomic,
)
from ledger._note import Signer, Verifier
from schemas import LANGUAGES, N_
from schemas import gettext as _

DEFAULT_HOME = ".bfa"
_ORIGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)*")
_CONFIG_KEYS = ("origin", "database_url", "group", "archive", "lang")
_BANK_ACCOUNTS = "bank_accounts"
FUND_ACCOUNTS = ("income", "expenditure", "fiscal_special")
_REGION_RE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True, slots=True)
class BankAccount:
    """A bank account of the agency as the home's configuration maps it (FORMAT.md §5.4):
    the fund account it serves and its pooling region; statements are read through it."""

    number: str
    fund_account: str
    region: str


@dataclass(frozen=True, slots=True)
class Home:
    """A resolved ledger home directory and the settings found in it."""

    path: Path
    db_url: str
    origin: str | None
    signing_key_path: Path
    secret_key_path: Path
    group: str | None = None
    """The operating-system group sharing this home (``bfa init --group``); None: private."""
    verifier_key_path: Path | None = None
    """``keys/verifier.key`` unless ``BFA_VERIFIER_KEY`` names another file."""
    vault_key_path: Path | None = None
    """``keys/vault.key`` unless ``BFA_VAULT_KEY`` names another file."""
    archive_path: Path | None = None
    """The voucher store shared with other homes (``BFA_ARCHIVE``, else ``config.json``'s
    ``archive``, which ``bfa init --from`` sets to the source home's); None: in the home."""
    bank_accounts: tuple[BankAccount, ...] = ()
    """``config.json``'s ``bank_accounts``, by account number."""
    lang: str | None = None
    """``config.json``'s ``lang``: the language people read this home's output in
    (``zh_CN`` or ``en``); None: the locale's."""

    def bank_account(self, number: str) -> BankAccount | None:
        return next((a for a in self.bank_accounts if a.number == number), None)

    @property
    def archive_dir(self) -> Path:
        return self.archive_path if self.archive_path is not None else self.path / "archive"

    @property
    def perms(self) -> Perms:
        """Modes of what bfa writes for this home (private, or shared by its group)."""
        return perms_for(self.group)

    def loose(self) -> list[Path]:
        """The home directory and database file if group or others may read them in a
        private home (a home made before homes were private; 'bfa init' fixes it)."""
        if self.group is not None:
            return []
        candidates = [self.path]
        if self.db_url.startswith("sqlite:///"):
            candidates.append(Path(self.db_url.removeprefix("sqlite:///")))
        out = []
        for p in candidates:
            try:
                if p.stat().st_mode & 0o077:
                    out.append(p)
            except OSError:
                continue
        return out

    def require_origin(self) -> str:
        """The ledger's origin; :class:`ConfigError` when this is not an initialised home."""
        if self.origin is None:
            raise ConfigError(_("{home} is not a ledger home; run 'bfa init' first").format(
                home=self.path))
        return self.origin

    def signer(self) -> Signer:
        """Load the signing key; :class:`ConfigError` names the file when unusable."""
        text = _read_key(self.signing_key_path, "signing key", self.perms)
        try:
            signer = Signer.from_text(text)
        except Exception as e:
            raise ConfigError(_("{path}: not a note signer key: {error}").format(
                path=self.signing_key_path, error=e)) from e
        if self.origin is not None and signer.name != self.origin:
            raise ConfigError(  # FORMAT.md §5.1: the origin is also the signing key's name
                _("{path}: the key is named {name}, not this ledger's origin {origin}").format(
                    path=self.signing_key_path, name=repr(signer.name),
                    origin=repr(self.origin)))
        return signer

    def verifier(self) -> Verifier:
        """The verifier key: ``keys/verifier.key`` (checked against the signing key when
        this home has that too), else derived from the signing key (a home made before
        verifier key files were written)."""
        path = self.verifier_key_path
        if path is None or not path.exists():
            return self.signer().verifier()
        text = _read_key(path, "verifier key", self.perms)
        try:
            verifier = Verifier.from_text(text)
        except Exception as e:
            raise ConfigError(_("{path}: not a note verifier key: {error}").format(
                path=path, error=e)) from e
        if self.origin is not None and verifier.name != self.origin:
            raise ConfigError(
                _("{path}: the key is named {name}, not this ledger's origin {origin}").format(
                    path=path, name=repr(verifier.name), origin=repr(self.origin)))
        # an auditor's key named by BFA_VERIFIER_KEY may be another key of the ledger's
        # chain (FORMAT.md §5.7): the pair is checked for the home's own verifier key
        if (path.absolute() == (self.path / "keys" / "verifier.key").absolute()
                and self.signing_key_path.exists()
                and self.signer().verifier().to_text() != verifier.to_text()):
            raise ConfigError(_("{path}: not the verifier key of {signing}; remove it and run "
                                "'bfa init' to write the right one").format(
                path=path, signing=self.signing_key_path))
        return verifier

    def vault_key(self) -> bytes:
        """Load the vault key (32 bytes) that wraps the vault's data keys."""
        assert self.vault_key_path is not None
        text = _read_key(self.vault_key_path, "vault key", self.perms)
        try:
            raw = bytes.fromhex(text)
        except ValueError as e:
            raise ConfigError(_("{path}: the vault key must be hex").format(
                path=self.vault_key_path)) from e
        if len(raw) != 32:
            raise ConfigError(_("{path}: the vault key must be 32 bytes (64 hex digits)")
                              .format(path=self.vault_key_path))
        return raw

    def secret(self) -> bytes:
        """Load the ledger secret used for pseudonyms and content digests."""
        text = _read_key(self.secret_key_path, "ledger secret", self.perms)
        try:
            raw = bytes.fromhex(text)
        except ValueError as e:
            raise ConfigError(_("{path}: the ledger secret must be hex").format(
                path=self.secret_key_path)) from e
        if len(raw) < 32:
            raise ConfigError(_("{path}: the ledger secret must be 32 bytes").format(
                path=self.secret_key_path))
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
            raise ConfigError(_("{file}: unreadable configuration: {reason}").format(
                file=cfg_file, reason=e)) from e
        config = _check_config(cfg_file, loaded)
    url = db_url or os.environ.get("BFA_DATABASE_URL") or str(config.get("database_url") or "")
    if not url:
        url = f"sqlite:///{(path / 'ledger.db').resolve()}"
    origin = config.get("origin")
    group = config.get("group")
    shared = os.environ.get("BFA_ARCHIVE") or config.get("archive")
    keys = path / "keys"
    return Home(
        path=path,
        db_url=url,
        origin=str(origin) if origin else None,
        signing_key_path=Path(os.environ.get("BFA_SIGNING_KEY") or keys / "signing.key"),
        secret_key_path=Path(os.environ.get("BFA_SECRET_KEY") or keys / "secret.key"),
        group=str(group) if group else None,
        verifier_key_path=Path(os.environ.get("BFA_VERIFIER_KEY") or keys / "verifier.key"),
        vault_key_path=Path(os.environ.get("BFA_VAULT_KEY") or keys / "vault.key"),
        archive_path=Path(str(shared)).expanduser() if shared else None,
        bank_accounts=_bank_accounts(config.get(_BANK_ACCOUNTS)),
        lang=str(config["lang"]) if config.get("lang") else None,
    )


def _bank_accounts(value: object) -> tuple[BankAccount, ...]:
    if not isinstance(value, dict):
        return ()
    return tuple(BankAccount(str(k), str(v["fund_account"]), str(v["region"]))
                 for k, v in sorted(value.items()))


def check_bank_account(number: str, fund_account: str, region: str) -> BankAccount:
    """A mapping to keep, or :class:`ConfigError` naming what is wrong."""
    num = number.strip()
    if (not num or len(num) > 128 or not num.isascii() or not num.isprintable()
            or " " in num):
        raise ConfigError(_("bank account number {number}: 1-128 ASCII letters, digits and "
                            "signs without spaces, as on the bank's statements (no full-width "
                            "digits)").format(number=repr(printable(number))))
    if fund_account not in FUND_ACCOUNTS:
        raise ConfigError(_("fund account {account} is not one of {accounts}").format(
            account=repr(printable(fund_account)), accounts=", ".join(FUND_ACCOUNTS)))
    if not _REGION_RE.fullmatch(region):
        raise ConfigError(_("region {region} is not a 6-digit pooling-region code").format(
            region=repr(printable(region))))
    return BankAccount(num, fund_account, region)


def set_bank_account(home: Home, account: BankAccount | str, *, remove: bool = False) -> Home:
    """Add, change or (``remove``) remove one bank account of ``config.json``'s
    ``bank_accounts``, written whole or not at all; returns the home as it now is."""
    cfg_file = home.path / "config.json"
    if not cfg_file.is_file():
        raise ConfigError(_("{home}: no config.json (run 'bfa init' first)").format(
            home=home.path))
    loaded = _check_config(cfg_file, json.loads(cfg_file.read_text(encoding="utf-8")))
    accounts = dict(loaded.get(_BANK_ACCOUNTS) or {})  # type: ignore[call-overload]
    number = account if isinstance(account, str) else account.number
    if remove:
        if accounts.pop(number, None) is None:
            raise ConfigError(_("bank account {number} is not in {file}").format(
                number=repr(printable(number)), file=cfg_file))
    else:
        assert isinstance(account, BankAccount)
        accounts[number] = {"fund_account": account.fund_account, "region": account.region}
    loaded = {**loaded, _BANK_ACCOUNTS: accounts}
    if not accounts:
        del loaded[_BANK_ACCOUNTS]
    write_atomic(cfg_file, json.dumps(loaded, indent=2, ensure_ascii=False) + "\n",
                 home.perms)
    return resolve_home(str(home.path), home.db_url)


def set_home_language(home: Home, lang: str | None) -> Home:
    """Set (or, with None, remove) ``config.json``'s ``lang``, written whole or not at
    all; returns the home as it now is."""
    if lang is not None and lang not in LANGUAGES:
        raise ConfigError(_("language {lang} is not one of {languages}").format(
            lang=repr(printable(lang)), languages=", ".join(LANGUAGES)))
    cfg_file = home.path / "config.json"
    if not cfg_file.is_file():
        raise ConfigError(_("{home}: no config.json (run 'bfa init' first)").format(
            home=home.path))
    loaded = _check_config(cfg_file, json.loads(cfg_file.read_text(encoding="utf-8")))
    loaded = {k: v for k, v in loaded.items() if k != "lang"}
    if lang is not None:
        loaded["lang"] = lang
    write_atomic(cfg_file, json.dumps(loaded, indent=2, ensure_ascii=False) + "\n",
                 home.perms)
    return resolve_home(str(home.path), home.db_url)


def _check_config(cfg_file: Path, loaded: object) -> dict[str, object]:
    """``config.json`` as FORMAT.md §5.4 gives it: an object with ``origin`` and,
    optionally, ``database_url``, both strings; anything else is refused by name (a
    misspelt ``database_url`` must not quietly send commands to the default SQLite file)."""
    if not isinstance(loaded, dict):
        raise ConfigError(_("{file}: must be a JSON object {example} (all but the first "
                            "optional)").format(
            file=cfg_file, example='{"origin": "...", "database_url": "...", "group": "...", '
                                   '"archive": "..."}'))
    unknown = sorted(set(loaded) - set(_CONFIG_KEYS) - {_BANK_ACCOUNTS})
    if unknown:
        raise ConfigError(_("{file}: unknown setting {setting} (known: {known})").format(
            file=cfg_file, setting=repr(printable(unknown[0])),
            known=", ".join((*_CONFIG_KEYS, _BANK_ACCOUNTS))))
    banks = loaded.get(_BANK_ACCOUNTS)
    if _BANK_ACCOUNTS in loaded:
        if not isinstance(banks, dict):
            raise ConfigError(_("{file}: bank_accounts must be an object {example}").format(
                file=cfg_file, example='{"NUMBER": {"fund_account": "...", "region": "..."}}'))
        for number, v in banks.items():
            if not (isinstance(v, dict) and set(v) == {"fund_account", "region"}
                    and all(isinstance(x, str) for x in v.values())):
                raise ConfigError(_("{file}: bank_accounts {number} must be {example}").format(
                    file=cfg_file, number=repr(printable(number)),
                    example='{"fund_account": "...", "region": "..."}'))
            try:
                if check_bank_account(number, v["fund_account"], v["region"]).number != number:
                    raise ConfigError(_("bank account number {number} has surrounding spaces")
                                      .format(number=repr(printable(number))))
            except ConfigError as e:
                raise ConfigError(f"{cfg_file}: bank_accounts: {e}") from None
    for key in _CONFIG_KEYS:
        value = loaded.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(_("{file}: {setting} must be a string").format(
                file=cfg_file, setting=key))
    if loaded.get("lang") is not None and loaded["lang"] not in LANGUAGES:
        raise ConfigError(_("{file}: lang {lang} is not one of {languages}").format(
            file=cfg_file, lang=repr(printable(str(loaded["lang"]))),
            languages=", ".join(LANGUAGES)))
    origin = loaded.get("origin")
    if not origin:
        raise ConfigError(_("{file}: no origin (the ledger's name, set by 'bfa init')").format(
            file=cfg_file))
    if not _ORIGIN_RE.fullmatch(str(origin)):
        raise ConfigError(_("{file}: origin {origin} is not a ledger name like "
                            "'agency.example/ledger' (letters, digits, ._~-/)").format(
            file=cfg_file, origin=repr(printable(str(origin)))))
    return loaded


def init_home(home: Home, origin: str, group: str | None = None) -> Home:
    """Create the home directory, its configuration and both keys (never overwriting),
    private to the user running bfa or shared by ``group``; run again, it makes an
    existing home's directories and files as private as its setting says."""
    if not _ORIGIN_RE.fullmatch(origin):
        raise ConfigError(
            _("origin {origin} must look like 'agency.example/ledger' (letters, digits, "
              "._~-/)").format(origin=repr(origin))
        )
    if home.origin and home.origin != origin:
        raise ConfigError(_("{home} already belongs to ledger {have}, not {origin}").format(
            home=home.path, have=repr(home.origin), origin=repr(origin)))
    if group is not None and home.origin and home.group != group:
        raise ConfigError(
            _("{home} is shared by {group}; a home's sharing is decided when it is created")
            .format(home=home.path, group=repr(home.group)) if home.group else
            _("{home} is private; a home's sharing is decided when it is created").format(
                home=home.path))
    vpath = home.verifier_key_path
    if vpath is not None and vpath.exists() and not home.signing_key_path.exists():
        raise ConfigError(_("{home} holds a verifier key but no signing key: it is a home for "
                            "a duty ('bfa init --from'); 'bfa init --origin' makes a ledger's "
                            "first home").format(home=home.path))
    group = home.group if group is None else group
    perms = perms_for(group)
    make_dir(home.path, perms)
    make_dir(home.path / "archive", perms)
    cfg_file = home.path / "config.json"
    if not cfg_file.exists():
        cfg: dict[str, str] = {"origin": origin}
        if group:
            cfg["group"] = group
        write_atomic(cfg_file, json.dumps(cfg, indent=2) + "\n", perms)
    if not home.signing_key_path.exists():
        make_dir(home.signing_key_path.parent, perms)
        _write_secret_file(home.signing_key_path, Signer.generate(origin).to_text() + "\n",
                           perms)
    if not home.secret_key_path.exists():
        make_dir(home.secret_key_path.parent, perms)
        _write_secret_file(home.secret_key_path, secrets.token_hex(32) + "\n", perms)
    assert home.vault_key_path is not None
    if not home.vault_key_path.exists():
        make_dir(home.vault_key_path.parent, perms)
        _write_secret_file(home.vault_key_path, secrets.token_hex(32) + "\n", perms)
    if vpath is not None and not vpath.exists():
        make_dir(vpath.parent, perms)
        signer = resolve_home(str(home.path), home.db_url).signer()
        _write_secret_file(vpath, signer.verifier().to_text() + "\n", perms)
    if home.db_url.startswith("sqlite:///"):
        db = Path(home.db_url.removeprefix("sqlite:///"))
        make_dir(db.parent, perms)
        create_private(db, perms)
    _harden(home, perms)
    ready = resolve_home(str(home.path), home.db_url)
    ready.signer()  # keys that were there already must be usable (mode 0600, named origin)
    ready.verifier()  # and belong together
    ready.secret()  # before anything is written to the database
    ready.vault_key()
    return ready


DUTY_KEYS: dict[str, tuple[str, ...]] = {
    "officer": ("secret", "vault"),
    "approver": (),
    "auditor": (),
    "privacy": ("secret", "vault"),
    "service": ("signing",),
}
"""Keys a duty's home holds besides the verifier key (FORMAT.md §5.4): the ledger secret
for those who pseudonymise (ingest) or find a person's pseudonym (forget), the signing
key for the service account that signs."""


def join_home(src: Home, dst: Home, duties: tuple[str, ...]) -> Home:
    """Make ``dst`` a private home of the ledger of ``src`` for a person holding
    ``duties``: its configuration (``src``'s origin, ``dst``'s database URL) and only the
    keys those duties need (:data:`DUTY_KEYS`), copied from ``src``. Never overwrites a
    key; a key already in ``dst`` must be ``src``'s. The database is not touched."""
    origin = src.require_origin()
    if not dst.db_url.startswith("postgresql"):
        raise ConfigError(_("a home for a duty joins a PostgreSQL ledger (--db "
                            "postgresql://YOUR_ROLE@HOST/DB): on SQLite the ledger is one "
                            "file, shared as a group home ('bfa init --group')"))
    if dst.origin and dst.origin != origin:
        raise ConfigError(_("{home} already belongs to ledger {have}, not {origin}").format(
            home=dst.path, have=repr(dst.origin), origin=repr(origin)))
    if dst.path.resolve() == src.path.resolve():
        raise ConfigError(_("--from names the home being made; give another --home"))
    perms = perms_for(None)
    make_dir(dst.path, perms)
    cfg_file = dst.path / "config.json"
    if not cfg_file.exists():
        # one voucher store for the ledger: the audit of any home reads the files every
        # officer's ingest stored (FORMAT.md §5.4)
        cfg: dict[str, object] = {"origin": origin, "database_url": dst.db_url,
                                  "archive": str(src.archive_dir.resolve())}
        if src.bank_accounts:  # statements are read through the same map in every home
            cfg[_BANK_ACCOUNTS] = {a.number: {"fund_account": a.fund_account,
                                              "region": a.region} for a in src.bank_accounts}
        write_atomic(cfg_file, json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", perms)
    wanted = {k for d in duties for k in DUTY_KEYS[d]}
    texts = {"verifier": src.verifier().to_text()}
    if "secret" in wanted:
        texts["secret"] = src.secret().hex()
    if "vault" in wanted:
        texts["vault"] = src.vault_key().hex()
    if "signing" in wanted:
        texts["signing"] = src.signer().to_text()
    ready = resolve_home(str(dst.path), dst.db_url)
    paths = {"verifier": ready.verifier_key_path, "secret": ready.secret_key_path,
             "vault": ready.vault_key_path,
             "signing": ready.signing_key_path}
    for name, text in texts.items():
        path = paths[name]
        assert path is not None
        if path.exists():
            if _read_key(path, f"{name} key", perms) != text:
                raise ConfigError(_("{path}: already holds another key than {home}'s").format(
                    path=path, home=src.path))
            continue
        make_dir(path.parent, perms)
        _write_secret_file(path, text + "\n", perms)
    ready.verifier()
    return ready


def _harden(home: Home, perms: Perms) -> None:
    """Give what is already in the home the modes of its setting (a home made before
    homes were private): every directory and file bfa keeps there but the keys. A key
    others could read may have been copied: it is refused (``chmod 600``) by its owner's
    decision, not made private behind their back."""
    keys = {home.signing_key_path.absolute(), home.secret_key_path.absolute(),
            *([home.vault_key_path.absolute()] if home.vault_key_path else []),
            *([home.verifier_key_path.absolute()] if home.verifier_key_path else [])}
    store = (home.path / "archive" / "sha256").absolute()
    for root, dirs, files in os.walk(home.path):
        fix_mode(Path(root), perms, directory=True)
        for name in files:
            if (Path(root) / name).absolute() not in keys:
                fix_mode(Path(root) / name, perms,
                         read_only=Path(root).absolute().parent == store)
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]


def write_key_file(path: Path, text: str, perms: Perms) -> None:
    """Create the key file ``path`` holding ``text`` (never over an existing file or
    link), with the home's file mode, its directory made first."""
    make_dir(path.parent, perms)
    _write_secret_file(path, text, perms)


def _write_secret_file(path: Path, text: str, perms: Perms) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, perms.file_mode)
    if perms.gid is not None:
        os.fchown(fd, -1, perms.gid)
    os.fchmod(fd, perms.file_mode)  # whatever the umask
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


_NOT_HELD = {
    "ledger secret": N_("{path}: this home holds no ledger secret; ingest, compare and forget "
                        "need it: the homes of the officer and privacy duties hold it ('bfa "
                        "init --from HOME --duty …')"),
    "signing key": N_("{path}: this home holds no signing key; checkpoint and nightly need it: "
                      "the home of the service duty holds it ('bfa init --from HOME --duty "
                      "…')"),
    "vault key": N_("{path}: this home holds no vault key; ingest and reveal need it: the "
                    "homes of the officer and privacy duties hold it ('bfa init --from HOME "
                    "--duty …')"),
}
"""What a home made for other duties says of a key it was not given: who needs it."""


def _read_key(path: Path, what: str, perms: Perms) -> str:
    if what in _NOT_HELD and not path.exists() and not path.is_symlink():
        vkey = path.parent / "verifier.key"
        if vkey.exists():  # a home made for duties that do not need this key
            raise ConfigError(_(_NOT_HELD[what]).format(path=path))
    check_private_file(path, what, perms)
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(key_file_text(what, "unreadable", path=path,
                                        error=e.strerror or e)) from e
    except UnicodeDecodeError as e:
        raise ConfigError(key_file_text(what, "not_text", path=path)) from e
