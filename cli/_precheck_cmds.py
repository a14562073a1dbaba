"""The ``precheck`` command: check a proposed payment batch before it is sent (事前).

The check is :func:`reconcile.precheck` (INTERCHANGE.md §12.4); this module parses the
options, hands it a sink for the held lines and renders them: a table for people, JSON
for machines, CSV (UTF-8 with a byte-order mark, or GB18030), and the hold file — the
held lines as sent, with their reasons, the only place clear personal data is written.
The renderers take plain values and are tested without click.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

import click

from cli._app import bfa
from cli._exit import Exit
from cli._options import (
    check_output_file,
    given,
    home_options,
    json_option,
    open_ledger,
    progress,
    user_option,
)
from cli._render import table, wrapped
from ledger import open_text
from reconcile import HOLD_REASONS, HOLD_TEXT, Held, PrecheckResult, precheck
from schemas import gettext as _

SHOWN = 20
"""Held lines listed on the terminal; the rest are counted (all are in --hold-file)."""


def reasons_text(reasons: tuple[str, ...]) -> str:
    """The reasons in the reader's language, joined."""
    return _("; ").join(_(HOLD_TEXT[r]) for r in reasons)


def render_summary(res: PrecheckResult, shown: list[Held], hold_file: Path | None) -> str:
    """What a person reads: counts per reason, the first held lines, where the rest are."""
    out = [f"SHA-256 {res.digest}",
           _("lines: {lines}   clear: {clear}   held: {held}").format(
               lines=res.lines, clear=res.clear, held=res.held), ""]
    rows = [{"why": _(HOLD_TEXT[c]), "code": c, "n": res.counts[c]} for c in HOLD_REASONS]
    out.append(table(rows, ["why", "code", "n"], right=("n",),
                     headers={"why": _("reason"), "code": _("code"), "n": _("lines")}))
    if res.unjudged:
        out += ["", *wrapped(_(
            "{count} line(s) are in a region and insurance of which the ledger holds no "
            "benefit approval: no approval could be looked up for them (as the reconciler, "
            "the check does not hold them for that)").format(count=res.unjudged), "")]
    if shown:
        out += ["", _("held lines:") if res.held <= len(shown) else
                _("held lines (the first {n}):").format(n=len(shown))]
        held_rows = [{"line": h.line, "id": h.record_id, "why": ", ".join(h.reasons)}
                     for h in shown]
        out.append(table(held_rows, ["line", "id", "why"], right=("line",), fit=78,
                         headers={"line": _("line"), "id": _("id"), "why": _("reasons")}))
        if res.held > len(shown):
            out.append(_("… and {n} more").format(n=res.held - len(shown)))
            if hold_file is None:
                out += wrapped(_("(every held line: --hold-file PATH, --csv or --json)"), "")
    out += ["", _("recorded in the ledger as entry {seq}:").format(seq=res.seq), res.id]
    if hold_file is not None:
        out += wrapped(_("{count} held line(s) written to {file}").format(
            count=res.held, file=str(hold_file)), "")
    return "\n".join(out) + "\n"


def summary_json(res: PrecheckResult) -> dict[str, Any]:
    """The result for machines (codes, never translated)."""
    return {"file": res.file, "digest": res.digest, "lines": res.lines, "clear": res.clear,
            "held": res.held, "reasons": res.counts, "unjudged": res.unjudged,
            "rules": res.rules, "record": res.id, "seq": res.seq}


def held_json(h: Held) -> dict[str, Any]:
    return {"line": h.line, "id": h.record_id, "reasons": list(h.reasons)}


def _cell(text: str) -> str:
    """A CSV text cell that a spreadsheet will not take for a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


CSV_HEADER = ("line", "id", "reasons", "why")


def csv_header() -> list[str]:
    return [_("line"), _("id"), _("reasons"), _("why")]


def csv_row(h: Held) -> list[str]:
    return [str(h.line), _cell(h.record_id), ";".join(h.reasons), _cell(reasons_text(h.reasons))]


class _Out:
    """Where held lines go while the check runs: the hold file, CSV or JSON on standard
    output, and the first :data:`SHOWN` for the summary."""

    def __init__(self, hold: IO[str] | None, name: str, mode: str, encoding: str) -> None:
        self.hold, self.name, self.mode, self.encoding = hold, name, mode, encoding
        self.shown: list[Held] = []
        self.n = 0
        self.buf = io.StringIO(newline="")
        self.csv = csv.writer(self.buf, lineterminator="\r\n")
        self.started = False

    def _start(self) -> None:
        """The CSV header or the JSON document's start, with the first held line or at the
        end: a check that cannot run prints nothing on standard output (no header that
        reads as "nothing held", no JSON cut short)."""
        if self.started:
            return
        self.started = True
        if self.mode == "csv":
            self._write(("\ufeff" if self.encoding == "utf-8" else "")
                        + self._csv(csv_header()))
        elif self.mode == "json":
            self._write('{\n  "held_lines": [')

    def _csv(self, row: list[str]) -> str:
        self.csv.writerow(row)
        text = self.buf.getvalue()
        self.buf.seek(0)
        self.buf.truncate()
        return text

    def _write(self, text: str) -> None:
        if self.encoding == "gb18030":
            sys.stdout.buffer.write(text.encode("gb18030"))
        else:
            sys.stdout.write(text)

    def __call__(self, h: Held, text: str | None) -> None:
        if self.hold is not None:
            self.hold.write(json.dumps({"file": self.name, "line": h.line, "id": h.record_id,
                                        "reasons": list(h.reasons), "text": text},
                                       ensure_ascii=False) + "\n")
        if self.mode in ("csv", "json"):
            self._start()
        if self.mode == "csv":
            self._write(self._csv(csv_row(h)))
        elif self.mode == "json":
            self._write(("," if self.n else "") + "\n    "
                        + json.dumps(held_json(h), ensure_ascii=False, sort_keys=True))
        elif len(self.shown) < SHOWN:
            self.shown.append(h)
        self.n += 1

    def finish(self, res: PrecheckResult) -> None:
        self._start()
        if self.mode == "json":
            rest = json.dumps(summary_json(res), ensure_ascii=False, indent=2, sort_keys=True)
            self._write(("\n  " if self.n else "") + "],\n" + rest[2:] + "\n")
        sys.stdout.flush()
        if self.encoding == "gb18030":
            sys.stdout.buffer.flush()


@bfa.command("precheck")
@home_options
@click.argument("file", metavar="FILE",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print one CSV row per held line.")
@click.option("--encoding", type=click.Choice(["utf-8", "gb18030"]), default="utf-8",
              show_default=True,
              help="CSV: UTF-8 with a byte-order mark (Excel reads it), or GB18030.")
@click.option("--hold-file", "hold_file", metavar="PATH",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Write the held lines here as sent, with their reasons (JSON Lines; it "
                   "holds personal data in clear, private as the home).")
@click.option("--rules", "rules_file", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rules file (TOML): one-off benefits and tolerance, as for reconcile.")
@user_option
def precheck_cmd(home: str | None, db: str | None, file: Path, as_json: bool, as_csv: bool,
                 encoding: str, hold_file: Path | None, rules_file: Path | None,
                 user: str | None) -> None:
    """Check a proposed payment batch against the ledger before it is sent.

    FILE holds benefit payments (business.benefit_payment JSON Lines, as for
    ingest). Each line is checked for an approval in force, the approved amount, a
    termination, a compared death list, the approved account, an earlier payment of
    the period and a duplicate inside the batch. Nothing of the file is stored: the
    ledger gets one control.precheck entry (the file's SHA-256, the counts, who).
    Exits 0 when every line is clear, 1 when lines are to be held, 2 when it could
    not run (a bad line: nothing is recorded), 3 when a derived row it relies on
    differs from its entry (nothing is recorded; run 'bfa reconcile').

    Example:

    \b
        bfa precheck pay-2026-12.jsonl --hold-file held.jsonl
        bfa precheck pay-2026-12.jsonl --csv --encoding gb18030 > held.csv
    """
    if as_json and as_csv:
        raise click.UsageError(_("--json and --csv are exclusive: choose one."))
    if not as_csv and given(click.get_current_context(), "encoding"):
        raise click.UsageError(_("--encoding is the encoding of the CSV: give it with --csv."))
    if hold_file is not None and hold_file.exists() and os.path.samefile(file, hold_file):
        raise click.UsageError(_("--hold-file {file} is the batch itself; write the held "
                                 "lines to another file").format(file=hold_file))
    if hold_file is not None:
        check_output_file(hold_file, home, db, "--hold-file")
    mode = "json" if as_json else "csv" if as_csv else "text"
    if mode == "text":  # an output that cannot be written stops the check before it is
        # recorded (--json and --csv write inside the check's transaction)
        sys.stdout.write("\n".join(wrapped(_("precheck of {file}").format(file=file), ""))
                         + "\n")
        sys.stdout.flush()
    with open_ledger(home, db) as led:
        part = None if hold_file is None else hold_file.with_name(hold_file.name + ".part")
        hold = None if part is None else open_text(part, led.home.perms)
        out = _Out(hold, os.fsencode(file).decode("utf-8", "backslashreplace"), mode,
                   encoding if as_csv else "utf-8")
        try:
            with progress(file.stat().st_size or None, _("checking")) as tick:
                res = precheck(led, file, rules=rules_file, label=user, on_held=out,
                               with_text=hold is not None, progress=tick)
            if hold is not None and part is not None and hold_file is not None:
                hold.close()
                os.replace(part, hold_file)
        except BaseException:
            if hold is not None and part is not None:
                hold.close()
                part.unlink(missing_ok=True)
            raise
    out.finish(res)
    if mode == "text":
        click.echo(render_summary(res, out.shown, hold_file), nl=False)
    raise click.exceptions.Exit(int(Exit.PROBLEMS if res.held else Exit.CLEAN))


__all__ = ["csv_header", "csv_row", "held_json", "reasons_text", "render_summary",
           "summary_json"]
