"""``index.html`` of a proof bundle: one self-contained page a supervisor opens in a browser.

No script, no style sheet or font from elsewhere, every value escaped. It states what the
bundle claims; it proves nothing by itself — ``bfa bundle verify`` (or an independent
verifier, FORMAT.md §12) does. Headings in Chinese with English beside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ledger import local_time

_STYLE = (
    "body{font-family:system-ui,'Noto Sans CJK SC','Microsoft YaHei',sans-serif;"
    "margin:1.5rem auto;max-width:72rem;padding:0 1rem;color:#1a1a1a}"
    "table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}"
    "th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top;"
    "overflow-wrap:anywhere}th{background:#f2f2f2}td.num{text-align:right}"
    "code{font-size:.9em}.high{color:#a00;font-weight:600}.note{color:#555}"
)

SHOWN = 2000
"""Rows of a table the page shows at most; the bundle's files list the rest."""


def _cell(value: Any) -> str:
    return escape("" if value is None else str(value))


def _table(rows: Sequence[Mapping[str, Any]], cols: Sequence[tuple[str, str]],
           numeric: frozenset[str] = frozenset(), total: int | None = None,
           source: str = "") -> str:
    """A table of the first :data:`SHOWN` of ``rows``; with ``total`` (how many there are,
    of which ``rows`` are the first), a line saying how many more ``source`` lists."""
    head = "".join(f"<th>{escape(label)}</th>" for _key, label in cols)
    body = []
    for r in rows[:SHOWN]:
        tds = "".join(
            f'<td class="num">{_cell(r.get(k))}</td>' if k in numeric else
            f"<td>{_cell(r.get(k))}</td>" for k, _label in cols)
        body.append(f"<tr>{tds}</tr>")
    total = len(rows) if total is None else total
    shown = min(len(rows), SHOWN)
    more = ("" if total <= shown else
            f'<p class="note">还有 {total - shown} 项，见 <code>{escape(source)}</code>。'
            f"… {total - shown} more ({escape(source)} lists all)</p>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def render_index(claims: Mapping[str, Any], entries: Sequence[Mapping[str, Any]],
                 findings: Mapping[str, Any], breaks: Sequence[Mapping[str, Any]],
                 vouchers: Sequence[Mapping[str, Any]]) -> str:
    """The page for a bundle's claims (whose ``counts`` say how many of each there are), the
    first :data:`SHOWN` entries, ``findings`` (its ``as_of``, ``ruleset`` and
    ``not_reported``), the first breaks and the first voucher files."""
    scope = claims.get("scope") or {}
    counts = claims.get("counts") or {}
    gone: Sequence[Mapping[str, Any]] = findings.get("not_reported") or ()
    parts = [
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>证据包 Proof bundle {_cell(claims.get('id'))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>证据包 Proof bundle</h1>",
        '<p class="note">本页只列出证据包声明的内容；请用 <code>bfa bundle verify DIR --key '
        "VERIFIER_KEY</code> 离线核验。This page lists what the bundle claims; check it "
        "offline with <code>bfa bundle verify DIR --key VERIFIER_KEY</code>.</p>",
        "<h2>概况 Summary</h2>",
        _table([
            {"k": "账本 Ledger", "v": claims.get("origin")},
            {"k": "证据包编号 Bundle id", "v": claims.get("id")},
            {"k": "导出时间 Exported at", "v": local_time(claims.get("created_at"))},
            {"k": "导出人 Exported by", "v": (claims.get("exporter") or {}).get("user")},
            {"k": "导出密钥 Exporter key", "v": (claims.get("exporter") or {}).get("key")},
            {"k": "检查点 Checkpoint",
             "v": f"size {(claims.get('checkpoint') or {}).get('size')}, root "
                  f"{(claims.get('checkpoint') or {}).get('root')}"},
            {"k": "范围 Scope", "v": "; ".join(
                f"{k}: {', '.join(map(str, v))}" for k, v in sorted(scope.items()) if v)},
            {"k": "核对日期与规则 As of, rules",
             "v": f"{findings.get('as_of')}, {findings.get('ruleset')}"},
        ], [("k", "项目 Item"), ("v", "内容 Value")]),
        f"<h2>问题 Findings ({counts.get('breaks', len(breaks))})</h2>",
        _table([{**b, "amounts": ", ".join(f"{k}={v}" for k, v in (b.get("amounts") or {})
                                          .items()),
                 "status": (b.get("workflow") or {}).get("status", "open"),
                 "records": ", ".join(b.get("records") or ())}
                for b in breaks],
               [("id", "编号 Id"), ("code", "代码 Code"), ("severity", "级别 Severity"),
                ("records", "记录 Records"), ("amounts", "金额 Amounts"),
                ("amount_at_risk", "风险金额 At risk"), ("status", "状态 Status"),
                ("message", "说明 Message")], frozenset({"amount_at_risk"}),
               counts.get("breaks"), "bfa/findings.json"),
        *([f"<h2>点名但未报告的问题 Named breaks not reported ({len(gone)})</h2>",
           '<p class="note">按本证据包的核对日期与规则，这些点名的问题不再报告'
           "（已解决，或另行判断）；以下为其最后状态与处理记录。"
           "As of this bundle's date and rules these named breaks are not reported "
           "(resolved since, or judged otherwise); their last state and workflow "
           "follow.</p>",
           _table([{**b, "records": ", ".join(b.get("records") or ()),
                    "status": (b.get("workflow") or {}).get("status", ""),
                    "by": (b.get("workflow") or {}).get("resolved_by") or "",
                    "reason": (b.get("workflow") or {}).get("reason") or ""} for b in gone],
                  [("id", "编号 Id"), ("code", "代码 Code"), ("records", "记录 Records"),
                   ("status", "状态 Status"), ("by", "处理人 Resolved by"),
                   ("reason", "原因 Reason"), ("message", "说明 Message")])]
          if gone else []),
        f"<h2>账本条目 Entries ({counts.get('entries', len(entries))})</h2>",
        _table(entries, [("seq", "序号 Seq"), ("domain", "域 Domain"), ("kind", "类型 Kind"),
                         ("id", "记录 Record"), ("role", "角色 Role"),
                         ("hash", "条目哈希 Entry hash")], frozenset({"seq"}),
               counts.get("entries"), "bfa/entries.jsonl"),
        f"<h2>凭证文件 Voucher files ({counts.get('vouchers', len(vouchers))})</h2>",
        _table([{**v, "records": ", ".join(v.get("records") or ())} for v in vouchers],
               [("sha256", "SHA-256"), ("size", "字节 Bytes"), ("records", "记录 Records")],
               frozenset({"size"}), counts.get("vouchers"), "bfa/vouchers.jsonl"),
        "</body></html>\n",
    ]
    return "".join(parts)
