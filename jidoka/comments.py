"""The comments Jidoka leaves on issues: evidence, questions, halts. Pure text builders."""

from __future__ import annotations

import re

from jidoka import closing, ratchet
from jidoka.cost import money_text
from jidoka.models import HaltRecord, ShipEvidence, TestComparison, TestSample
from jidoka.outcomes import JUDGE_STOP_CATEGORIES
from jidoka.review import ChangeRequest, ReviewLedger, approvers

MAX_SUMMARY = 2000


def _clip(text: str, limit: int = MAX_SUMMARY) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def neutral(text: str) -> str:
    """Text that cannot pose as a comment marker (``<!-- jidoka:... -->``) or a heading, nor
    make a forge close an issue (``Fixes #12`` in a pull request's body closes #12 on merge)."""
    inert = closing.inert(text)
    return inert.replace("<!--", "<!- -").replace("-->", "- ->").replace("\n#", "\n\\#")


def quoted(text: str, limit: int = MAX_SUMMARY) -> str:
    """An agent's words, as a quote that can carry none of Jidoka's own marks: no marker, no
    heading, no code span (the proof lines of a ship comment are code spans), no bold label."""
    clean = neutral(_clip(text, limit)).replace("`", "\\`").replace("**", "\\*\\*")
    return "> " + clean.replace("\n", "\n> ")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def name(text: str, limit: int = 300) -> str:
    """A name the agent controls (a path, a test id) as one inert code span."""
    clean = _CONTROL.sub("?", _clip(text, limit)).replace("`", "'").replace("**", "*\u200b*")
    return f"`{neutral(clean)}`"


def _plain(text: str) -> str:
    """Words that mix names the agent controls with a person's: one inert line."""
    return neutral(_CONTROL.sub("?", _clip(text, 600))).replace("`", "'").replace("**", "\\*\\*")


def _sample_line(what: str, sample: TestSample) -> str | None:
    if not sample.count:
        return None
    listed = ", ".join(name(test_id, 200) for test_id in sample.ids[:10])
    more = sample.count - min(len(sample.ids), 10)
    return f"  - {what} ({sample.count}): {listed}" + (f" and {more} more" if more else "")


def tests_lines(tests: TestComparison) -> list[str]:
    """What happened to the tests, as the ship comment and the pull request show it."""
    lines = [f"- tests: {neutral(ratchet.summary(tests))}"]
    for what, sample in (
        ("added", tests.added),
        ("removed", tests.removed),
        ("newly skipped", tests.newly_skipped),
        ("newly passing", tests.newly_passing),
    ):
        line = _sample_line(what, sample)
        if line is not None:
            lines.append(line)
    return lines


def spent_text(evidence: ShipEvidence) -> str:
    """What the issue cost: exact, a lower bound while some attempt's cost is unknown, or
    unknown (never ``$0.00`` for a cost nobody knows)."""
    currency = evidence.currency or "USD"
    unknown = evidence.cost_unknown_attempts
    if evidence.cost is None or (unknown and not evidence.cost):
        return "unknown (no price for the agent's model, or no usage reported)"
    amount = money_text(evidence.cost, currency)
    if unknown:
        return f"at least {amount} ({unknown} attempt(s) of unknown cost)"
    return amount


def ship_comment(evidence: ShipEvidence, done_state: str, verify_command: str | None) -> str:
    lines = [
        f"**Jidoka: shipped** → {done_state}",
        "",
        f"- branch `{evidence.branch}`: {evidence.commits_ahead} commit(s) beyond "
        f"`{evidence.base_sha}`, tip `{evidence.head_sha}`"
        + (f", pushed to {evidence.pushed_to}" if evidence.pushed_to else ""),
        f"- content changed outside .jidoka/: {evidence.diff.files_changed} file(s), "
        f"+{evidence.diff.insertions} -{evidence.diff.deletions}",
        "- verify: "
        + (
            f"passed at `{evidence.verified_sha}` in a fresh checkout (`{verify_command}`)"
            if verify_command and evidence.verified_sha
            else "not configured (hooks.verify)"
        ),
        f"- tokens: {evidence.tokens_total:,}",
    ]
    if evidence.currency is not None:
        lines.append(f"- cost: {spent_text(evidence)}")
    if evidence.tests is not None:
        lines += tests_lines(evidence.tests)
    if evidence.protected:
        lines.append("- protected paths changed, with consent:")
        lines += [f"  - {_plain(entry)}" for entry in evidence.protected]
    if evidence.pull_request_url:
        lines.append(f"- pull request: {evidence.pull_request_url}")
    if evidence.summary:
        lines += [
            "",
            "Agent's summary (its words, not evidence):",
            "",
            quoted(evidence.summary),
        ]
    return "\n".join(lines)


def questions_comment(questions: list[str], paused_state: str, workflow_id: str) -> str:
    listed = (
        "\n\n".join(f"Question {i}:\n\n{quoted(q, 1000)}" for i, q in enumerate(questions, 1))
        or "(none given)"
    )
    return (
        f"**Jidoka: paused** → {paused_state}. The agent needs answers:\n\n{listed}\n\n"
        "Answer with `jidoka issue answer` or "
        f"`temporal workflow signal --workflow-id {workflow_id} --name answer "
        '--input \'{"answer": "...", "operator": "you"}\'`, '
        "or move the issue back to an active state."
    )


def answer_comment(answer: str, operator: str) -> str:
    who = operator or "an operator"
    return f"**Jidoka: answered** by {neutral(who)}:\n\n" + quoted(answer)


def halt_comment(halt: HaltRecord, workflow_id: str) -> str:
    judge_stop = halt.category in JUDGE_STOP_CATEGORIES
    choices = (
        '(or `"abandon"`; `"accept"` consents to this change of the judge and judges the same '
        'work again; a `"retry"` sends it back to the agent with your `"note"`).'
        if judge_stop
        else '(or `"abandon"`).'
    )
    return (
        f"**Jidoka: halted** ({halt.category.value}, by {halt.source.value}):\n\n"
        f"{quoted(halt.reason, 1000)}\n\n"
        "Nothing more happens on this issue until an operator decides:\n"
        f"`temporal workflow update execute --workflow-id {workflow_id} --name decide "
        '--input \'{"decision": "retry", "root_cause": "...", "operator": "you"}\'` ' + choices
    )


def abandon_comment(reason: str, branch: str | None, detail: str) -> str:
    where = f"preserved on branch `{branch}` ({detail})" if branch else detail
    return (
        f"**Jidoka: abandoned**:\n\n{quoted(reason, 1000)}\n\n"
        f"The work is {where}. The issue's state is left to people."
    )


def lost_comment(workflow_id: str, status: str, line_halted: bool) -> str:
    """The line found the issue's workflow closed without a word about how it ended."""
    then = (
        "The line is halted until a person resumes it with a root cause."
        if line_halted
        else "Nothing will work on this issue until it is dispatched again."
    )
    return (
        f"**Jidoka: issue workflow ended without a report** ({status}): `{workflow_id}` closed "
        "without telling its line how the issue ended, so nothing here is shipped or decided. "
        f"{then} Its history is in the Temporal Web UI; move the issue back to an active state "
        "to work on it again."
    )


def done_without_ship_comment(done_state: str, phase: str) -> str:
    """The tracker says done, but Jidoka shipped nothing: the board must not pass for proof."""
    return (
        f"**Jidoka: moved to {neutral(done_state)} without a ship**: this issue reached the done "
        f"state while Jidoka was working on it ({phase}), and Jidoka did not ship it: no "
        "evidence was gathered, nothing was verified or pushed by Jidoka. Its work is kept in "
        "the workspace. The line is halted until a person resumes it with a root cause; move "
        "the issue back to an active state to have Jidoka work on it again."
    )


def stuck_comment(workflow_id: str, attempts: int) -> str:
    """The issue's workflow cannot take a step: its code fails before any decision is made."""
    return (
        f"**Jidoka: issue workflow stuck**: `{workflow_id}` failed {attempts} workflow tasks in a "
        "row (an error in Jidoka's code, or a deploy its history no longer replays on). Nothing "
        "here is decided; the line is halted. The error is in its history in the Temporal Web "
        "UI; it resumes by itself once a fixed worker is deployed."
    )


def review_round_comment(round_number: int, max_rounds: int, reason: str, url: str) -> str:
    """A rework round starts: what the change request asked for, in short (the agent's brief
    holds the whole of it)."""
    return (
        f"**Jidoka: rework round {round_number} of {max_rounds}** for {_plain(url)}: "
        f"{_plain(reason)}. The agent is told exactly this feedback; its work goes back into "
        "review only through the same evidence gate as the first ship."
    )


def merged_comment(
    request: ChangeRequest, ledger: ReviewLedger, tokens_total: int, *, by_jidoka: bool, done: str
) -> str:
    """The change request was merged: the evidence of how it got there."""
    head = request.head_sha or ledger.shipped_head
    moved = head != ledger.shipped_head
    checks = ", ".join(f"{name(c.name, 100)} {c.state.value}" for c in request.checks[:20])
    approved = ", ".join(name(a, 100) for a in approvers(request)[:20])
    lines = [
        f"**Jidoka: merged** → {neutral(done)}",
        "",
        f"- change request: {_plain(request.url or ledger.url)}",
        f"- head `{head}`"
        + (
            f" (Jidoka shipped `{ledger.shipped_head}`: someone else's head was merged)"
            if moved
            else ""
        ),
        "- merged by: "
        + ("Jidoka, pinned to that head" if by_jidoka else "a person (or the forge's own rules)"),
        f"- checks at the head: {checks or 'none reported'}",
        f"- approvals at the head: {approved or 'none recorded'}",
        f"- rework rounds: {ledger.rounds}; tokens in review: {ledger.tokens:,}; "
        f"tokens in all: {tokens_total:,}",
    ]
    return "\n".join(lines)
