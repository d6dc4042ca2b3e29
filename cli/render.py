"""Plain-text views of a line and its issues, shared by ``status``, ``watch`` and ``run``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from cli.common import ago, table
from cli.line_view import LineView
from cli.money import attempt_cost_text, attempts_total_text
from jidoka.models import AttemptRecord, Evidence, HaltRecord, RunningEntry
from jidoka.outcomes import JUDGE_STOP_CATEGORIES, Phase
from jidoka.payloads import IssueStatus, LineStatus


def resume_commands(line: str, workflow_id: str) -> list[str]:
    payload = json.dumps({"root_cause": "<what was wrong>", "operator": "<you>"})
    return [
        f'jidoka line resume --line {line} --root-cause "<what was wrong>" --operator "<you>"',
        f"temporal workflow update execute --workflow-id {workflow_id} --name resume --input '{payload}'",
    ]


def decide_commands(line: str, identifier: str, workflow_id: str) -> list[str]:
    payload = json.dumps(
        {"decision": "retry", "root_cause": "<what was wrong>", "operator": "<you>"}
    )
    return [
        f'jidoka issue decide {identifier} --line {line} retry --root-cause "<what was wrong>"  (or abandon)',
        f"temporal workflow update execute --workflow-id {workflow_id} --name decide --input '{payload}'",
    ]


def halt_line(halt: HaltRecord) -> str:
    where = f" ({halt.issue_identifier})" if halt.issue_identifier else ""
    return f"{halt.category.value} by {halt.source.value}{where}: {halt.reason}"


def line_status_text(
    status: LineStatus,
    now: datetime | None = None,
    *,
    review_rounds: Mapping[str, int] | None = None,
    money: LineView | None = None,
) -> str:
    """``review_rounds``: the rework rounds of the running issues that entered review, by
    workflow id (``JidokaReviewRounds``, read with the live phases). ``money``: the view that
    read the costs, on a priced line (each running issue's, and the line's total)."""
    now = now or datetime.now(UTC)
    rounds = review_rounds or {}
    priced = money if money is not None and money.cost is not None else None
    line = status.line or "?"
    out = [
        f"Line {line} ({status.workflow_id}): {'HALTED' if status.halted else status.phase.value}"
    ]
    for halt in status.open_halts:
        out.append(f"  halt: {halt_line(halt)} [{ago(halt.at, now)} ago]")
    if status.halted:
        out.append("  resume with a root cause:")
        out += [f"    {c}" for c in resume_commands(line, status.workflow_id)]
    if status.notice:
        out.append(f"  notice: {status.notice}")
    out += [f"  risk: {risk}" for risk in status.risks]
    if status.config_error:
        out.append(
            f"  WORKFLOW.md invalid, last good config in use, no new dispatch: {status.config_error}"
        )
    if status.tracker_error:
        out.append(f"  tracker: {status.tracker_error}")
    fleet = status.fleet
    cap = f" (cap {fleet.tokens_per_hour_cap:,})" if fleet.tokens_per_hour_cap else ""
    out.append(
        f"  tokens: {fleet.tokens_last_hour:,} in the last hour{cap}, {fleet.tokens_total:,} in total"
    )
    if priced is not None and priced.cost is not None:
        out.append(f"  cost: {priced.cost.text()}")
    if status.rate_gate_until and status.rate_gate_until > now:
        out.append(
            f"  rate-limit gate: no dispatch until {status.rate_gate_until.isoformat(timespec='seconds')}"
        )
    in_review = sum(1 for e in status.running if e.phase is Phase.IN_REVIEW)
    out.append(
        f"  ticks: {status.ticks}, last {ago(status.last_tick_at, now)} ago; {'idle' if status.idle else 'busy'}"
        + (f"; {in_review} in review (waiting on people, no agent slot held)" if in_review else "")
    )
    if status.running:
        out.append("Running")
        rows = [
            [
                e.identifier,
                _phase_cell(e, now, rounds.get(e.workflow_id)),
                e.attempt,
                f"{e.tokens:,}",
                *(
                    [priced.cost_text(e.workflow_id, e.tokens, e.last_outcome is not None)]
                    if priced is not None
                    else []
                ),
                ago(e.started_at, now),
                e.state,
            ]
            for e in status.running
        ]
        headers = ["ISSUE", "PHASE", "ATTEMPT", "TOKENS", "ELAPSED", "STATE"]
        if priced is not None:
            headers.insert(4, "COST")
        out.append(_indent(table(headers, rows)))
    if status.retry_queue:
        out.append(
            "Retry queue: "
            + ", ".join(
                f"{e.identifier} at {e.retry_at.isoformat(timespec='seconds')}"
                if e.retry_at
                else e.identifier
                for e in status.retry_queue
            )
        )
    if status.lost:
        out.append(
            "Ended without a report: "
            + ", ".join(f"{f.identifier} ({f.closed_without_report})" for f in status.lost)
        )
    if status.halts:
        out.append("Halt log")
        rows = [
            [
                h.at.isoformat(timespec="seconds"),
                h.category.value,
                h.source.value,
                h.issue_identifier,
                h.reason,
                h.resolved_by,
                h.root_cause,
            ]
            for h in status.halts
        ]
        out.append(
            _indent(
                table(
                    ["AT", "CATEGORY", "SOURCE", "ISSUE", "REASON", "RESUMED BY", "ROOT CAUSE"],
                    rows,
                )
            )
        )
    if status.finished:
        counts: dict[str, int] = {}
        for item in status.finished:
            counts[item.phase.value] = counts.get(item.phase.value, 0) + 1
        out.append("Finished: " + ", ".join(f"{n} {phase}" for phase, n in sorted(counts.items())))
    return "\n".join(out)


def _phase_cell(entry: RunningEntry, now: datetime, review_rounds: int | None) -> str:
    if entry.stuck:
        return "stuck (workflow task failing)"
    text = entry.phase.value
    if entry.phase_at is not None:
        text += f" for {ago(entry.phase_at, now)}"
    if review_rounds is not None and (entry.phase is Phase.IN_REVIEW or review_rounds > 0):
        text += f", {rework_rounds(review_rounds)}"
    if entry.infra_failures:
        text += f", {entry.infra_failures} lost host(s)"
    return text


def rework_rounds(count: int) -> str:
    return f"{count} rework round{'' if count == 1 else 's'}"


def evidence_text(evidence: Evidence | None) -> str:
    if evidence is None:
        return "-"
    reading = evidence.verdict
    if reading.verdict is not None:
        verdict = reading.verdict.verdict
    elif reading.error:
        verdict = "invalid verdict"
    else:
        verdict = "no verdict"
    git = evidence.git
    parts = [
        verdict,
        f"{git.commits_ahead} commit(s)",
        f"{git.diff.files_changed} file(s) +{git.diff.insertions}/-{git.diff.deletions}",
    ]
    if git.uncommitted_count:
        parts.append(f"{git.uncommitted_count} uncommitted")
    if evidence.verify is not None:
        parts.append(
            "verify "
            + (
                "timed out"
                if evidence.verify.timed_out
                else "ok"
                if evidence.verify.ok
                else "failed"
            )
        )
    return ", ".join(parts)


def issue_row(status: IssueStatus) -> list[object]:
    halt = status.halt
    phase = status.phase.value
    if status.review is not None and (status.phase is Phase.IN_REVIEW or status.review.rounds > 0):
        phase += f" ({rework_rounds(status.review.rounds)})"
    return [
        status.identifier or status.issue_id,
        (status.title or "")[:40],
        status.tracker_state,
        phase,
        status.last_outcome.value if status.last_outcome else None,
        evidence_text(status.last_evidence),
        f"{halt.category.value}: {halt.reason}" if halt else None,
        f"{status.counters.tokens.total_tokens:,}",
    ]


ISSUE_HEADERS = ["ISSUE", "TITLE", "STATE", "PHASE", "OUTCOME", "EVIDENCE", "HALT", "TOKENS"]


def issue_status_text(
    status: IssueStatus,
    now: datetime | None = None,
    *,
    link: str | None = None,
    currency: str | None = None,
) -> str:
    """``link``: the workflow's Web UI page (or why it is unknown); ``currency``: set on a
    priced line, which shows the issue's cost and each attempt's."""
    now = now or datetime.now(UTC)
    c = status.counters
    out = [
        f"{status.identifier or status.issue_id}: {status.title or ''}",
        f"  workflow: {status.workflow_id}" + (f" (Web UI: {link})" if link else ""),
        f"  phase: {status.phase.value}; tracker state: {status.tracker_state}",
        f"  attempts {c.attempts} (failures {c.failures}, continuations {c.continuations}, "
        f"lost to the infrastructure {c.infra_failures}), "
        f"turns {c.turns}, tokens {c.tokens.total_tokens:,} "
        f"({c.tokens_before_first_commit:,} before the first commit), agent time {c.agent_seconds:.0f}s",
        f"  last outcome: {status.last_outcome.value if status.last_outcome else '-'}; "
        f"evidence: {evidence_text(status.last_evidence)}",
    ]
    if currency is not None:
        out.insert(4, f"  cost: {attempts_total_text(c.cost, c.cost_unknown, currency)}")
        out += _attempt_lines(status.attempts, currency)
    if status.last_decision:
        d = status.last_decision
        out.append(f"  last decision: {d.kind.value}: {d.reason} (rule: {d.rule})")
    if status.halt:
        out.append(f"  HALTED: {halt_line(status.halt)}")
        out.append("  decide:")
        identifier = status.identifier or status.issue_id
        out += [
            f"    {cmd}"
            for cmd in decide_commands(status.line or "?", identifier, status.workflow_id)
        ]
        if status.review is not None and not status.review.reworking:
            out.append(
                "    (retry watches the change request again with the review caps afresh; "
                "abandon lets it go, the work preserved)"
            )
        if status.halt.category in JUDGE_STOP_CATEGORIES:
            out.append(
                f"    jidoka issue decide {identifier} --line {status.line or '?'} accept "
                '--root-cause "<why this change of the judge is right>"  (consent: judged again)'
            )
    if status.line_halted:
        out.append("  waiting: the line is halted")
    if status.retry_at is not None:
        out.append(f"  next attempt at {status.retry_at.isoformat(timespec='seconds')}")
    if status.questions:
        out.append("  questions:")
        out += [f"    - {q}" for q in status.questions]
    if status.config_error:
        out.append(f"  notice: {status.config_error}")
    if status.branch:
        out.append(f"  workspace: {status.workspace_path} on {status.branch} ({status.host_queue})")
    if status.ship:
        out.append(
            f"  shipped: {status.ship.commits_ahead} commit(s) at {status.ship.head_sha[:12]}"
            + (f", {status.ship.pull_request_url}" if status.ship.pull_request_url else "")
        )
    out += review_lines(status, now)
    if status.preserved_branch:
        out.append(f"  work preserved on {status.preserved_branch}")
    return "\n".join(out)


def _attempt_lines(attempts: list[AttemptRecord], currency: str) -> list[str]:
    """Each attempt the status keeps (the latest ones), with its tokens and its cost."""
    if not attempts:
        return []
    out = ["  attempts:"]
    for attempt in attempts:
        if attempt.agent_stop is None:
            spent = "no agent ran"
        else:
            reported = attempt.usage is not None or attempt.tokens > 0
            tokens = f"{attempt.tokens:,} tokens" if reported else "tokens not reported"
            cost = attempt_cost_text(
                attempt.cost, currency, usage_reported=reported, model=attempt.model
            )
            spent = f"{tokens}, {cost}"
        outcome = attempt.outcome.value if attempt.outcome else "under way"
        out.append(f"    {attempt.number}: {outcome} — {spent}")
    return out


def review_lines(status: IssueStatus, now: datetime) -> list[str]:
    """Where the issue's change request stands, once its work shipped into review."""
    ledger = status.review
    if ledger is None:
        return []
    out = [
        f"  review: {ledger.url} (since {ledger.started_at.isoformat(timespec='seconds')}, "
        f"{ago(ledger.started_at, now)} ago)",
        f"    shipped head {ledger.shipped_head[:12]}; {rework_rounds(ledger.rounds)}; "
        f"{ledger.tokens:,} tokens in review",
    ]
    if ledger.reworking:
        out.append(
            f"    now: rework round {ledger.rounds} under way (its ship goes back into review)"
        )
    if status.review_waiting:
        out.append(f"    now: {status.review_waiting}")
    return out


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
