"""Files and keys only their owners read (FORMAT.md §5.4): a private home is 0700/0600
throughout, a group home 2770/0660; reports and reject files follow the home; writes
cannot be redirected by a planted link; keys someone else could have replaced are
refused."""

from __future__ import annotations

import grp
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli import (
        bfa,
)
from tests._records import payment_event, voucher, write_jsonl

AS_OF = "2026-11-30"


def run(home: Path, *args: str, code: int | tuple[int, ...] = 0, **env: str) -> Result:
    r = CliRunner().invoke(bfa, list(args), env={"BFA_HOME": str(home), "BFA_USER": "tester",
                                                 **env})
    codes = code if isinstance(code, tuple) else (code,)
    assert r.exit_code in codes, (args, r.exit_code, r.output)
    return r


def _file_mode(name: str, mode: int) -> int:
    """The mode a file of the home must have: stored voucher files are read-only
    (FORMAT.md §11.1), everything else ``mode``."""
    return mode & ~0o222 if name.startswith("archive/sha256/") else mode


def modes(root: Path) -> dict[str, int]:
    """Permission bits (with setgid) of everything under ``root``, links left out."""
    out = {}
    for p in [root, *root.rglob("*")]:
        st = p.lstat()
        if not stat.S_ISLNK(st.st_mode):
            out[str(p.relative_to(root)) or "."] = stat.S_IMODE(st.st_mode)
    return out


def _busy_home(tmp_path: Path, *init: str) -> Path:
    home = tmp_path / "home"
    run(home, "init", "--origin", "test.example/ledger", *init)
    vdir = tmp_path / "in"
    vdir.mkdir()
    recs: list[Any] = [payment_event(1), voucher(vdir, 1, ["BP-1"])]
    batch = write_jsonl(vdir / "batch.jsonl", [*recs, "not json"])
    run(home, "ingest", str(batch), "--reject-file", str(tmp_path / "rejects.jsonl"), code=1)
    run(home, "nightly", "--report-dir", str(home / "reports"), "--as-of", AS_OF, code=(0, 1))
    return home


def test_a_private_home_is_0700_and_0600_throughout(tmp_path: Path) -> None:
    home = _busy_home(tmp_path)
    found = modes(home)
    assert found["."] == 0o700
    for name in ("config.json", "ledger.db", "keys/signing.key", "keys/secret.key",
                 "nightly.lock.guard"):
        assert found[name] == 0o600, name
    assert any(n.startswith("archive/sha256/") and len(n) > 80 for n in found)
    assert any(n.startswith("reports/") and n.endswith("report.json") for n in found)
    wrong = {n: oct(m) for n, m in found.items()
             if m != (0o700 if (home / n).is_dir() else _file_mode(n, 0o600))}
    assert wrong == {}
    assert stat.S_IMODE((tmp_path / "rejects.jsonl").stat().st_mode) == 0o600


def test_a_group_home_is_2770_and_0660(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getegid()).gr_name
    home = _busy_home(tmp_path, "--group", group)
    assert json.loads((home / "config.json").read_text())["group"] == group
    found = modes(home)
    wrong = {n: oct(m) for n, m in found.items()
             if m != (0o2770 if (home / n).is_dir() else _file_mode(n, 0o660))}
    assert wrong == {}
    assert {p.stat().st_gid for p in home.rglob("*")} == {os.getegid()}
    assert stat.S_IMODE((tmp_path / "rejects.jsonl").stat().st_mode) == 0o660
    r = run(home, "init", "--origin", "test.example/ledger", code=0)
    assert "ready" in r.output  # run again without --group: still the group's home
    r = run(tmp_path / "other", "init", "--origin", "t.example/x", "--group",
            "no-such-group-bfa", code=2)
    assert "no operating-system group 'no-such-group-bfa'" in r.output


def test_an_old_loose_home_is_named_and_init_makes_it_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "init", "--origin", "test.example/ledger")
    os.chmod(home, 0o755)
    os.chmod(home / "ledger.db", 0o644)
    r = run(home, "status")
    assert "bfa: warning:" in r.output and "may be read by group or others" in r.output
    run(home, "init", "--origin", "test.example/ledger")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "ledger.db").stat().st_mode) == 0o600
    assert "warning" not in run(home, "status").output


def test_planted_links_do_not_redirect_report_writes(tmp_path: Path) -> None:
    """The nightly writes temporary files created exclusively and renames them over its
    reports: a link planted in a shared report directory is replaced, never followed."""
    home = tmp_path / "home"
    run(home, "init", "--origin", "test.example/ledger")
    reports = tmp_path / "reports"
    (reports / AS_OF).mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("latest.json", f"{AS_OF}/report.json", f"{AS_OF}/nightly.json"):
        os.symlink(victim, reports / name)
    run(home, "nightly", "--report-dir", str(reports), "--as-of", AS_OF)
    assert victim.read_text() == "precious"
    assert not (reports / "latest.json").is_symlink()
    assert json.loads((reports / "latest.json").read_text())["exit_code"] == 0
    assert [p.name for p in reports.rglob("*.tmp")] == []


def test_a_reject_file_that_is_a_link_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "init", "--origin", "test.example/ledger")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "rejects.jsonl"
    os.symlink(victim, link)
    batch = write_jsonl(tmp_path / "b.jsonl", [payment_event(1), "not json"])
    r = run(home, "ingest", str(batch), "--reject-file", str(link), code=2)
    assert "symbolic link" in r.output and victim.read_text() == "precious"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_key_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "init", "--origin", "test.example/ledger")
    os.chown(home / "keys" / "signing.key", 4321, -1)
    r = run(home, "checkpoint", code=2)
    assert "belongs to user 4321, not to you" in r.output


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a directory's owner needs root")
def test_a_key_in_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "init", "--origin", "test.example/ledger")
    os.chown(home / "keys", 4321, -1)
    r = run(home, "checkpoint", code=2)
    assert "belongs to user 4321, who could replace the key" in r.output


def test_a_key_reached_through_a_link_into_an_open_directory_is_refused(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "init", "--origin", "test.example/ledger")
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)  # anyone may replace what is in it (no sticky bit)
    real = open_dir / "signing.key"
    os.replace(home / "keys" / "signing.key", real)
    os.symlink(real, home / "keys" / "signing.key")
    r = run(home, "checkpoint", code=2)
    assert f"{open_dir}: a directory on the way to the signing key is writable" in r.output
    os.chmod(open_dir, 0o1777)  # sticky, as /tmp: others cannot replace our file
    run(home, "checkpoint")
