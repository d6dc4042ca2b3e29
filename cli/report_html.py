"""``jidoka report``'s page: one self-contained HTML file (inline CSS, inline SVG charts, no
script, nothing fetched) rendering a :class:`~jidoka.report.LineReport`, the same document
``--json`` prints. docs/report.md explains each figure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from cli.report_charts import Column, column_chart
from jidoka.report import IssueRow, LineReport, ParetoBar, SpendFigures

VALUE_COLOUR = "#2e8b57"
WASTE_COLOUR = "#c0392b"
UNCLASSIFIED_COLOUR = "#9aa3ad"
STOP_COLOUR = "#d35400"

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232a;
       margin: 0 auto; max-width: 1100px; padding: 24px; background: #fbfbfa; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; }
p.sub { color: #5b6470; margin: 0; }
a { color: #1f5fa8; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 20px; }
.card { background: #fff; border: 1px solid #dde1e6; border-radius: 8px; padding: 12px 16px;
        min-width: 170px; flex: 1; }
.card .name { color: #5b6470; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .figure { font-size: 22px; font-weight: 600; margin: 2px 0; }
.card .detail { color: #5b6470; font-size: 12px; }
table { border-collapse: collapse; background: #fff; margin: 8px 0; }
th, td { border-bottom: 1px solid #e6e9ed; padding: 5px 10px; text-align: left;
         vertical-align: top; }
th { font-size: 12px; color: #5b6470; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { background: #fff; border: 1px dashed #b8c0ca; border-radius: 8px; padding: 24px;
         margin-top: 20px; font-size: 16px; }
.notes li { color: #6b4e00; }
.pair { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
svg.chart { background: #fff; border: 1px solid #dde1e6; border-radius: 8px; margin: 8px 0; }
footer { color: #5b6470; font-size: 12px; margin-top: 40px; }
"""


def render_html(report: LineReport) -> str:
    body = [_header(report)]
    if report.empty:
        body.append(
            '<section class="empty" id="empty"><p>No issue of line '
            f"<strong>{escape(report.line)}</strong> was active between "
            f"{when(report.window.since)} and {when(report.window.until)}: nothing to report."
            "</p></section>"
        )
    else:
        body += [
            _cards(report),
            _value_and_waste(report),
            _waste_by_outcome(report),
            _waiting(report),
            _stops(report),
            _issue_section("slowest", "The slowest issues", report.slowest, report),
            _issue_section(
                "most-expensive", "The most expensive issues", report.most_expensive, report
            ),
            _issue_section("issues", "Every issue of the window", report.issues, report),
        ]
    if report.notes:
        body.append(
            '<section id="notes"><h2>Notes</h2><ul class="notes">'
            + "".join(f"<li>{escape(note)}</li>" for note in report.notes)
            + "</ul></section>"
        )
    body.append(
        "<footer>Made by <code>jidoka report</code> from the line's Temporal histories. Each "
        "figure is explained in docs/report.md (in Jidoka's repository). Costs come from the "
        "prices in WORKFLOW.md (<code>pricing:</code>); a cost that is not known is written "
        "<em>unknown</em>, never as zero.</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Jidoka report: line {escape(report.line)}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


# -- sections ---------------------------------------------------------------------------------


def _header(report: LineReport) -> str:
    link = (
        f' · <a href="{escape(report.line_url)}">the line in the Temporal Web UI</a>'
        if report.line_url
        else ""
    )
    return (
        f"<header><h1>Line {escape(report.line)}</h1>"
        f'<p class="sub">From {when(report.window.since)} to {when(report.window.until)} '
        f"({report.window.days:.1f} days) · generated {when(report.generated_at)}{link}</p>"
        "</header>"
    )


def _card(name: str, figure: str, detail: str) -> str:
    return (
        f'<div class="card"><div class="name">{escape(name)}</div>'
        f'<div class="figure">{escape(figure)}</div>'
        f'<div class="detail">{escape(detail)}</div></div>'
    )


def _cards(report: LineReport) -> str:
    lead = report.lead_time
    ftt = report.first_time_through
    spend = report.spend
    open_part = f", {report.open_issues} still open" if report.open_issues else ""
    cards = [
        _card(
            "Throughput",
            f"{report.throughput.shipped} shipped",
            f"{report.throughput.per_day:.2f} a day · {report.issues_total} issues "
            f"active{open_part}",
        ),
        _card(
            "Lead time (median)",
            duration(lead.median_s),
            f"dispatch to done · p90 {duration(lead.p90_s)} · max {duration(lead.max_s)}",
        ),
        _card(
            "First-time-through",
            percent(ftt.rate),
            f"{ftt.first_time} of {ftt.shipped} shipped at their first attempt",
        ),
        _card(
            "Cost per shipped issue",
            spend.cost_per_shipped.headline(report.currency) if spend.cost_per_shipped else "-",
            _joined(
                spend.cost_per_shipped.caveat() if spend.cost_per_shipped else "",
                "all the window's spend, waste included, over the issues shipped",
            ),
        ),
        _card(
            "Spend",
            spend.total.cost.headline(report.currency),
            _joined(
                spend.total.cost.caveat(),
                f"{_tokens(spend.total.tokens, spend.unknown_issues)} tokens · "
                f"{duration(spend.total.agent_seconds)} of agent time",
            ),
        ),
    ]
    return f'<section id="flow" class="cards">{"".join(cards)}</section>'


def _value_and_waste(report: LineReport) -> str:
    spend = report.spend
    kinds = [("value", spend.value, VALUE_COLOUR), ("waste", spend.waste, WASTE_COLOUR)]
    if spend.unclassified.attempts or spend.unclassified.tokens:
        kinds.append(("unclassified", spend.unclassified, UNCLASSIFIED_COLOUR))
    chart = column_chart(
        "chart-value-waste",
        "Value and waste, in tokens",
        [Column(name, f.tokens, f"{f.tokens:,}", colour) for name, f, colour in kinds],
    )
    rows = [_spend_row(name, figures, report) for name, figures, _ in kinds]
    usage = spend.usage
    return (
        '<section id="value-waste"><h2>Value and waste</h2>'
        "<p>Value is the spend of the attempts that shipped; every other attempt is waste. "
        "Unclassified is spend no attempt record holds (an attempt still being judged).</p>"
        f'<div class="pair">{chart}'
        + _table(["", "attempts", "tokens", "cost", "agent time"], rows, numeric_from=1)
        + "</div>"
        + f"<p>Tokens by kind: {usage.input_tokens:,} input (of which "
        f"{usage.cached_input_tokens:,} from the provider's cache), {usage.output_tokens:,} "
        "output.</p></section>"
    )


def _waste_by_outcome(report: LineReport) -> str:
    wastes = report.spend.waste_by_outcome
    if not wastes:
        return (
            '<section id="waste-by-outcome"><h2>Waste by outcome</h2>'
            "<p>No waste: every judged attempt of the window shipped.</p></section>"
        )
    chart = column_chart(
        "chart-waste-by-outcome",
        "Waste by outcome, in tokens",
        [Column(w.outcome.value, w.spend.tokens, f"{w.spend.tokens:,}") for w in wastes],
    )
    rows = [_spend_row(w.outcome.value, w.spend, report) for w in wastes]
    return (
        '<section id="waste-by-outcome"><h2>Waste by outcome</h2>'
        "<p>What the attempts that did not ship spent, by how they ended.</p>"
        f'<div class="pair">{chart}'
        + _table(["outcome", "attempts", "tokens", "cost", "agent time"], rows, numeric_from=1)
        + "</div></section>"
    )


def _waiting(report: LineReport) -> str:
    waiting = report.waiting
    rows = [
        ["issues halted, waiting for a person's decision", duration(waiting.halted_s)],
        ["issues paused, waiting for answers", duration(waiting.paused_s)],
        ["attempts waiting for an agent slot", duration(waiting.slot_wait_s)],
        [
            "the line stopped (nothing new dispatched)",
            duration(waiting.line_stopped_s) if waiting.line_stopped_s is not None else "unknown",
        ],
    ]
    return (
        '<section id="waiting"><h2>Waiting</h2>'
        "<p>Time, not tokens: inside the window, summed over issues.</p>"
        + _table(["", "time"], rows, numeric_from=1)
        + "</section>"
    )


def _stops(report: LineReport) -> str:
    stops = report.stops
    if stops.total == 0:
        return (
            '<section id="stops"><h2>Stops</h2><p>The line did not stop in this window.</p>'
            "</section>"
        )
    chart = column_chart(
        "chart-stops",
        "Stops by category (Pareto)",
        [Column(bar.label, bar.count, str(bar.count), STOP_COLOUR) for bar in stops.by_category],
        cumulative=[bar.cumulative_pct for bar in stops.by_category],
    )
    open_part = f", {stops.open} still open" if stops.open else ""
    causes = (
        _pareto_table("root cause", stops.by_root_cause)
        if stops.by_root_cause
        else "<p>No root cause was given yet.</p>"
    )
    return (
        '<section id="stops"><h2>Stops</h2>'
        f"<p>{stops.total} stops{open_part}, each counted once (a halt an issue reports and "
        "the line records is one stop). The few categories at the front stop the line "
        "most: the dashed line is 80%.</p>"
        f'<div class="pair">{chart}'
        + _pareto_table("category", stops.by_category)
        + "</div>"
        + '<h2 id="root-causes">Root causes given at resume</h2>'
        + causes
        + "</section>"
    )


def _issue_section(
    section_id: str, title: str, rows: Sequence[IssueRow], report: LineReport
) -> str:
    headers = ["issue", "status", "dispatched", "time", "attempts", "tokens", "cost", "stops"]
    cells = [
        [
            _issue_link(row),
            escape(row.status),
            when(row.started_at),
            duration(row.duration_s),
            _count(row.attempts),
            _count(row.tokens),
            escape(report.cost_text(row.cost)) if row.cost is not None else "unknown",
            str(row.stops),
        ]
        for row in rows
    ]
    return (
        f'<section id="{section_id}"><h2>{escape(title)}</h2>'
        + _table(headers, cells, numeric_from=3, escaped=True)
        + "</section>"
    )


# -- pieces -----------------------------------------------------------------------------------


def _spend_row(name: str, figures: SpendFigures, report: LineReport) -> list[str]:
    return [
        name,
        str(figures.attempts),
        f"{figures.tokens:,}",
        report.cost_text(figures.cost),
        duration(figures.agent_seconds),
    ]


def _pareto_table(what: str, bars: Sequence[ParetoBar]) -> str:
    rows = [
        [bar.label, str(bar.count), f"{bar.share_pct:g}%", f"{bar.cumulative_pct:g}%"]
        for bar in bars
    ]
    return _table([what, "stops", "share", "cumulative"], rows, numeric_from=1)


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric_from: int,
    escaped: bool = False,
) -> str:
    def cell(tag: str, index: int, value: str) -> str:
        kind = ' class="num"' if index >= numeric_from else ""
        return f"<{tag}{kind}>{value if escaped and tag == 'td' else escape(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _issue_link(row: IssueRow) -> str:
    name = escape(row.identifier)
    title = f" <span>{escape(row.title)}</span>" if row.title else ""
    if row.url:
        return f'<a href="{escape(row.url)}">{name}</a>{title}'
    return name + title


def _joined(*parts: str) -> str:
    return " · ".join(part for part in parts if part)


def _count(value: int | None) -> str:
    return f"{value:,}" if value is not None else "unknown"


def _tokens(tokens: int, unknown_issues: int) -> str:
    return f"≥ {tokens:,}" if unknown_issues else f"{tokens:,}"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"


def duration(seconds: float | None) -> str:
    """``45s``, ``12m 03s``, ``3h 20m``, ``2d 04h``; ``-`` when there is none."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86_400:
        return f"{whole // 3600}h {(whole % 3600) // 60:02d}m"
    return f"{whole // 86_400}d {(whole % 86_400) // 3600:02d}h"
