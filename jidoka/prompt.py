"""Prompt rendering: the WORKFLOW.md body as a strict Liquid template (Symphony §5.4, §12).

Unknown variables and unknown filters fail. The verdict contract is appended by Jidoka, never
left to the template author, so every agent on every line is told the same way how to report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from liquid import Environment, StrictUndefined
from liquid.exceptions import LiquidError

from jidoka.config import HALT_VERDICT, WorkflowConfig
from jidoka.models import Issue, Problem

VERDICT_PATH = ".jidoka/verdict.json"
PROMPT_PATH = ".jidoka/prompt.md"

_ENVIRONMENT = Environment(undefined=StrictUndefined)


class PromptError(Exception):
    """The template failed for this issue (``template_parse_error`` / ``template_render_error``)."""


def issue_context(issue: Issue) -> dict[str, Any]:
    """The ``issue`` template variable: every normalised field, keys as strings (§12.2)."""
    data = issue.model_dump(mode="json")
    return {str(key): value for key, value in data.items()}


def render_prompt(template: str, issue: Issue, attempt: int | None) -> str:
    """Render the body for one attempt; ``attempt`` is None on the first one (§5.4)."""
    try:
        parsed = _ENVIRONMENT.from_string(template)
    except LiquidError as error:
        raise PromptError(f"template_parse_error: {_first_line(error)}") from None
    try:
        return parsed.render(issue=issue_context(issue), attempt=attempt)
    except LiquidError as error:
        raise PromptError(f"template_render_error: {_first_line(error)}") from None


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


SAMPLE_ISSUE = Issue(
    id="SAMPLE-1",
    identifier="SAMPLE-1",
    title="Sample title",
    description="Sample description",
    priority=1,
    state="Todo",
    branch_name=None,
    url="https://example.invalid/SAMPLE-1",
    labels=["sample"],
    blocked_by=[],
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    updated_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def template_problems(template: str, first_line: int = 1) -> list[Problem]:
    """Check a template without a real issue: parse it, then render it with a sample issue on
    a first attempt and on a retry, so unknown variables and filters fail at ``jidoka check``."""
    try:
        parsed = _ENVIRONMENT.from_string(template)
    except LiquidError as error:
        return [_template_problem("template_parse_error", error, first_line)]
    for attempt in (None, 2):
        try:
            parsed.render(issue=issue_context(SAMPLE_ISSUE), attempt=attempt)
        except LiquidError as error:
            return [_template_problem("template_render_error", error, first_line)]
    return []


def _template_problem(kind: str, error: LiquidError, first_line: int) -> Problem:
    token = getattr(error, "token", None)
    line = None
    if token is not None:
        try:
            line = int(token.source[: token.start_index].count("\n")) + first_line
        except (AttributeError, TypeError):
            line = None
    where = f" (line {line})" if line is not None else ""
    return Problem(
        path="(prompt)",
        message=f"{kind}{where}: {_first_line(error)}",
        hint="the template sees 'issue' (id, identifier, title, description, priority, state, "
        "branch_name, url, labels, blocked_by, created_at, updated_at) and 'attempt'",
    )


def verdict_contract(config: WorkflowConfig) -> str:
    """The instructions appended to every prompt: how to report, and what counts as done."""
    ship = config.ship_verdicts()
    pause = config.pause_verdicts()
    lines = [
        "",
        "---",
        "## How to finish (read by the orchestrator, not by a person)",
        "",
        f"Before you exit, write `{VERDICT_PATH}` (JSON, one object, these keys only):",
        '`{"verdict": "<VERDICT>", "summary": "...", "questions": [], "halt_reason": null}`',
        "",
        "Allowed verdicts:",
    ]
    for verdict in ship:
        lines.append(
            f"- `{verdict}`: the work is complete and committed on the current branch. "
            "Jidoka checks this itself: at least one commit beyond the base, a non-empty diff, "
            "a clean working tree"
            + (", and the project's verify command passing" if config.hooks.verify else "")
            + ". Claims without that evidence stop the line."
        )
    for verdict in pause:
        lines.append(
            f"- `{verdict}`: you cannot continue without answers from a person; "
            "put each question in `questions`."
        )
    lines.append(
        f"- `{HALT_VERDICT}`: something systemic is wrong (broken environment, dangerous request, "
        "corrupted state); explain in `halt_reason`. This stops the whole production line."
    )
    lines += [
        "",
        "Any other verdict, a missing file or a malformed file stops the line.",
        f"Do not commit `{VERDICT_PATH}` or anything else under `.jidoka/`.",
    ]
    return "\n".join(lines) + "\n"


def full_prompt(body: str, contract: str, guidance: str | None) -> str:
    """Prompt sent to the agent: rendered body, then continuation guidance, then the contract."""
    parts = [body.rstrip() + "\n"]
    if guidance:
        parts.append("\n---\n## Continuation\n\n" + guidance.rstrip() + "\n")
    parts.append(contract)
    return "".join(parts)
