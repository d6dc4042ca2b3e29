"""``jidoka report [WORKFLOW.md | --line NAME] [--since 7d|ISO] [--until ISO] [--out FILE]
[--json]``: what a line shipped, how fast, at what cost, what it wasted and what stopped it,
over a window of time (default: the last 7 days).

It reads the line's histories from Temporal (nothing is kept on the side) and writes one
self-contained HTML file (inline CSS and SVG charts: value and waste, waste by outcome, the
Pareto of stops; no script, nothing fetched), then prints its path. ``--json`` prints the same
report as JSON instead (and writes the page too when ``--out`` is given).

Running issues are read with their ``status`` query, which needs a worker: without one they
are listed with their figures unknown, and the report says so. See docs/report.md.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError

from cli.common import (
    WebUi,
    add_json_argument,
    add_target_arguments,
    client_or_fail,
    line_config,
    load_quietly,
    temporal_address,
    web_ui,
)
from cli.errors import CliError, SubParsers
from cli.report_html import duration, percent, render_html
from cli.report_read import UnknownLine, WorkflowUrl, read_line_facts
from jidoka.config import WorkflowConfig
from jidoka.keys import line_workflow_id
from jidoka.report import LineReport, Window, line_report

DEFAULT_SINCE = "7d"
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def add_parser(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="a line's throughput, lead time, cost, waste and Pareto of stops, as one HTML file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_arguments(parser)
    parser.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        help="the window's start: a span back from --until (30m, 12h, 7d, 2w) or an ISO date "
        f"or time, local time unless it names a zone (default {DEFAULT_SINCE})",
    )
    parser.add_argument(
        "--until",
        default=None,
        help="the window's end: an ISO date or time, or a span back from now (default now)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="the HTML file to write (default jidoka-report-<line>.html in the current folder; "
        "with --json, written only when given)",
    )
    add_json_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    window = parse_window(args.since, args.until, now)
    config = line_config(args)
    line = config.line if config is not None else str(args.line)

    async def go() -> LineReport:
        client = await client_or_fail()
        return await build_report(client, line, window, now=now, config=config)

    report = asyncio.run(go())
    if args.json:
        print(report.model_dump_json(indent=2))
        if args.out:
            path = write_html(report, Path(args.out))
            print(f"jidoka: wrote {path}", file=sys.stderr)
        return 0
    path = write_html(report, Path(args.out or f"jidoka-report-{line}.html"))
    print(summary_line(report))
    print(f"wrote {path}")
    return 0


# -- the window -------------------------------------------------------------------------------


def parse_window(since: str, until: str | None, now: datetime) -> Window:
    end = parse_moment(until, now, "--until") if until else now
    start = parse_moment(since, end, "--since")
    if start >= end:
        raise CliError(
            f"the window is empty: --since {since} is not before --until {until or 'now'}"
        )
    return Window(since=start, until=end)


def parse_moment(text: str, reference: datetime, option: str) -> datetime:
    """A span back from ``reference`` (``7d``) or an ISO date or time (local time without a
    zone)."""
    span = _SPAN.match(text)
    if span:
        return reference - timedelta(seconds=float(span.group(1)) * _UNIT_S[span.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"{option} {text!r}: expected a span such as 30m, 12h, 7d or 2w, or an ISO date or "
            "time such as 2026-01-31 or 2026-01-31T09:00:00Z"
        ) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.astimezone().astimezone(UTC)


# -- building and writing it ------------------------------------------------------------------


async def build_report(
    client: Client,
    line: str,
    window: Window,
    *,
    now: datetime,
    config: WorkflowConfig | None = None,
    ui_url: str | None = None,
) -> LineReport:
    """The report of ``line`` over ``window``, read from Temporal. ``config``: the line's
    WORKFLOW.md (its currency); else the one the line was started with, when readable here.
    ``ui_url``: the Web UI the links point to (default: the one of the server ``client``
    reaches, when it is known)."""
    ui = WebUi(ui_url) if ui_url else web_ui(client)
    url_of = ui_links(ui, client.namespace)
    try:
        facts = await read_line_facts(client, line, window, url_of)
    except UnknownLine:
        raise CliError(
            f"no line named {line!r} on {temporal_address()}: no workflow "
            f"{line_workflow_id(line)} and no issue workflow with JidokaLine = {line!r}",
            detail="check the name (jidoka line status --line NAME) and TEMPORAL_ADDRESS",
        ) from None
    except RPCError as error:
        raise CliError(f"Temporal refused a read of line {line!r}: {error.message}") from None
    config = config or load_quietly(facts.workflow_path)
    pricing = config.pricing if config is not None else None
    currency = pricing.currency if pricing is not None else None
    report = line_report(
        line,
        facts.issues,
        facts.halts,
        window,
        generated_at=now,
        currency=currency,
        line_url=url_of(line_workflow_id(line)) if facts.workflow_path is not None else None,
    )
    if ui.url is None:
        report.notes.append(f"no links to the Temporal Web UI: {ui.why_not}")
    return report


def ui_links(ui: WebUi, namespace: str) -> WorkflowUrl:
    """A workflow id -> its page in ``ui``; None when the UI's address is not known."""

    def url_of(workflow_id: str) -> str | None:
        return ui.link(workflow_id, namespace) if ui.url is not None else None

    return url_of


def write_html(report: LineReport, path: Path) -> Path:
    try:
        path.write_text(render_html(report), encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror or error}") from None
    return path.resolve()


def summary_line(report: LineReport) -> str:
    """One line of headline figures."""
    if report.empty:
        return f"line {report.line}: no issue was active in the window"
    spend = report.spend
    lead = report.lead_time
    return (
        f"line {report.line}, {report.window.days:.1f} days: {report.issues_total} issues, "
        f"{report.throughput.shipped} shipped ({report.throughput.per_day:.2f} a day), lead "
        f"time median {duration(lead.median_s)}, first-time-through "
        f"{percent(report.first_time_through.rate)}, {report.stops.total} stops; spent "
        f"{report.cost_text(spend.total.cost)} ({spend.total.tokens:,} tokens), of which "
        f"waste {report.cost_text(spend.waste.cost)} ({spend.waste.tokens:,} tokens)"
    )
