"""Prompt rendering: the WORKFLOW.md body as a strict, bounded Liquid template.

Unknown variables and unknown filters fail. The verdict contract is appended by Jidoka, never
left to the template author, so every agent on every line is told the same way how to report.

A template is code run on issue data, so every render is bounded: Liquid's own resource limits,
size guards around filters, and a time limit. ``jidoka check`` (:func:`template_problems`) and
each attempt (:func:`render_prompt`) share these limits, so a template that passes the check
cannot stall a worker by looping over issue data it never saw in the check. Any failure is a
:class:`PromptError` or a ``(prompt)`` problem, never another exception.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from liquid import BoundTemplate, Environment, RenderContext, StrictUndefined, Token
from liquid.builtin.tags.for_tag import ForLoop
from liquid.builtin.tags.tablerow_tag import TableRow
from liquid.exceptions import (
    BlockNestingError,
    ContextDepthError,
    LiquidError,
    LocalNamespaceLimitError,
    LoopIterationLimitError,
    OutputStreamLimitError,
    ResourceLimitError,
)
from liquid.output import LimitedStringIO

from jidoka.config import HALT_VERDICT, WorkflowConfig
from jidoka.models import Issue, Problem

VERDICT_PATH = ".jidoka/verdict.json"
PROMPT_PATH = ".jidoka/prompt.md"

RENDER_TIME_LIMIT_S = 5.0
"""Parse plus render(s) of one template. Real prompts take milliseconds."""
LOOP_ITERATION_LIMIT = 100_000
"""Per loop, multiplied across nested loops (Liquid's rule): labels x blockers is at most
10,000 (100 of each are carried per issue)."""
OUTPUT_LIMIT_BYTES = 1024 * 1024
"""Rendered prompt (UTF-8), also the largest string a filter may build: 5x a 200 KB issue."""
LOCAL_NAMESPACE_LIMIT_BYTES = 4 * 1024 * 1024
"""``assign``/``capture`` values (``sys.getsizeof``: up to 4 bytes per character)."""
NESTING_LIMIT = 30
"""Nested blocks at parse time and nested scopes (loops) at render time."""
_MAX_INTEGER_BITS = 14_000
"""About 4,200 digits: Python refuses to print integers above 4,300 digits."""
_JOIN_GRACE_S = 0.5
"""How long past the deadline to wait for the render thread to report its own time-out."""


class PromptError(Exception):
    """The template failed for this issue (``template_parse_error`` / ``template_render_error``)."""


class _BoundsError(ResourceLimitError):
    """A bound enforced here rather than by Liquid itself."""


class _BoundedContext(RenderContext):
    """A render context that checks the deadline wherever a template can repeat work: each
    loop iteration, filter call and assignment. A render past its deadline therefore stops
    itself within one step, even when the caller has already given up on it."""

    def __init__(self, template: BoundTemplate, **kwargs: Any) -> None:
        super().__init__(template, **kwargs)
        self.deadline = float("inf")
        # Liquid re-measures every local on each assignment, which is quadratic in the number
        # of names a template assigns; a running total keeps the same limit linear.
        self._local_sizes: dict[str, int] = {}
        self._locals_size = 0

    def check_deadline(self, token: Token | None = None) -> None:
        if time.monotonic() > self.deadline:
            raise _BoundsError(_TIME_LIMIT_DETAIL, token=token)

    @contextmanager
    def loop(
        self, namespace: Mapping[str, object], forloop: ForLoop | TableRow
    ) -> Generator[RenderContext]:
        forloop.it = self._until_deadline(forloop.it)
        with super().loop(namespace, forloop) as context:
            yield context

    def _until_deadline(self, items: Iterator[object]) -> Iterator[object]:
        for item in items:
            self.check_deadline()
            yield item

    def assign(self, key: str, val: Any) -> None:
        self.check_deadline()
        size = sys.getsizeof(val, 1)
        self._locals_size += size - self._local_sizes.get(key, 0)
        self._local_sizes[key] = size
        super().assign(key, val)

    def get_size_of_locals(self) -> int:
        return self._locals_size + self.local_namespace_size_carry

    def filter(self, name: str, token: Token | None) -> Callable[..., object]:
        function = super().filter(name, token)

        def bounded(left: object, *args: object, **kwargs: object) -> object:
            self.check_deadline(token)
            _check_filter_input(name, left, args, kwargs, token)
            result = function(left, *args, **kwargs)
            _check_filter_result(name, result, token)
            return result

        return bounded


def _check_filter_input(
    name: str,
    left: object,
    args: tuple[object, ...],
    kwargs: Mapping[str, object],
    token: Token | None,
) -> None:
    """Refuse inputs that would make one filter call do unbounded work: Liquid's loop limit
    does not apply to a range a filter iterates, and ``replace``/``join`` multiply sizes."""
    for value in (left, *args, *kwargs.values()):
        if isinstance(value, range) and _range_length(value) > LOOP_ITERATION_LIMIT:
            raise _BoundsError(
                f"{name}: a range of more than {LOOP_ITERATION_LIMIT:,} items exceeds the "
                "loop iteration limit",
                token=token,
            )
    estimate: int | None = None
    if name == "replace" and isinstance(left, str) and args:
        old = _plain_text(args[0])
        new = _plain_text(args[1]) if len(args) > 1 else ""
        if old is not None and new is not None and len(new) > len(old):
            estimate = len(left) + left.count(old) * (len(new) - len(old))
    elif name == "join" and isinstance(left, list | tuple):
        items = cast(list[object] | tuple[object, ...], left)
        separator = _plain_text(args[0]) if args else " "
        if separator is not None:
            estimate = _text_size(items) + len(separator) * len(items)
    if estimate is not None and estimate > OUTPUT_LIMIT_BYTES:
        raise _BoundsError(
            f"{name}: the result would have {estimate:,} characters, over the "
            f"{OUTPUT_LIMIT_BYTES:,}-byte output limit",
            token=token,
        )


def _check_filter_result(name: str, result: object, token: Token | None) -> None:
    """Keep every value a template holds small, so the next filter's input is small too."""
    if isinstance(result, str):
        size = len(result)
    elif isinstance(result, list | tuple):
        items = cast(list[object] | tuple[object, ...], result)
        if len(items) > LOOP_ITERATION_LIMIT:
            raise _BoundsError(
                f"{name}: built a list of {len(items):,} items, over the "
                f"{LOOP_ITERATION_LIMIT:,}-item loop iteration limit",
                token=token,
            )
        size = _text_size(items)
    elif isinstance(result, int) and result.bit_length() > _MAX_INTEGER_BITS:
        raise _BoundsError(f"{name}: the number has grown too large to print", token=token)
    else:
        return
    if size > OUTPUT_LIMIT_BYTES:
        raise _BoundsError(
            f"{name}: built {size:,} characters, over the {OUTPUT_LIMIT_BYTES:,}-byte output limit",
            token=token,
        )


def _range_length(span: range) -> int:
    try:
        return len(span)
    except OverflowError:  # longer than sys.maxsize
        return LOOP_ITERATION_LIMIT + 1


def _plain_text(value: object) -> str | None:
    """The text a string filter will use for ``value``, when that is cheap to know."""
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _text_size(value: object, depth: int = 0) -> int:
    """Characters a value prints as, roughly: strings count their length, anything else one.
    Lists can repeat one large string many times, so their size is not their length."""
    if isinstance(value, str):
        return len(value)
    if depth >= NESTING_LIMIT:
        return 1
    if isinstance(value, Mapping):
        mapping = cast(Mapping[object, object], value)
        return sum(_text_size(k, depth + 1) + _text_size(v, depth + 1) for k, v in mapping.items())
    if isinstance(value, list | tuple):
        items = cast(list[object] | tuple[object, ...], value)
        return sum(_text_size(item, depth + 1) for item in items)
    return 1


class _BoundedEnvironment(Environment):
    loop_iteration_limit = LOOP_ITERATION_LIMIT
    output_stream_limit = OUTPUT_LIMIT_BYTES
    local_namespace_limit = LOCAL_NAMESPACE_LIMIT_BYTES
    context_depth_limit = NESTING_LIMIT
    block_nesting_limit = NESTING_LIMIT


_ENVIRONMENT = _BoundedEnvironment(undefined=StrictUndefined)

_TIME_LIMIT_DETAIL = f"rendering exceeded the {RENDER_TIME_LIMIT_S:g} s time limit"
_LIMIT_DETAILS: dict[type[LiquidError], str] = {
    LoopIterationLimitError: f"loops exceeded the limit of {LOOP_ITERATION_LIMIT:,} iterations "
    "(nested loops multiply)",
    OutputStreamLimitError: f"the output exceeded the limit of {OUTPUT_LIMIT_BYTES:,} bytes",
    LocalNamespaceLimitError: "assigned and captured values exceeded the limit of "
    f"{LOCAL_NAMESPACE_LIMIT_BYTES:,} bytes",
    ContextDepthError: f"nesting exceeded the limit of {NESTING_LIMIT} levels",
    BlockNestingError: f"nesting exceeded the limit of {NESTING_LIMIT} levels",
}
_DETAIL_CHARS = 300
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class _TemplateFailure:
    kind: str
    """``template_parse_error`` or ``template_render_error``."""
    detail: str
    lines_before: int | None = None
    """Lines of the template before the failing tag, when Liquid knows where it failed."""


def _failure(kind: str, error: Exception) -> _TemplateFailure:
    detail = next((text for cls, text in _LIMIT_DETAILS.items() if isinstance(error, cls)), None)
    if detail is None:
        text = _first_line(error)
        if not isinstance(error, LiquidError):
            text = f"{type(error).__name__}: {text}"
        if len(text) > _DETAIL_CHARS:
            text = text[:_DETAIL_CHARS] + "..."
        detail = _UNPRINTABLE.sub(lambda found: repr(found.group())[1:-1], text)
    token = getattr(error, "token", None)
    lines_before = None
    if isinstance(token, Token) and 0 <= token.start_index <= len(token.source):
        lines_before = token.source.count("\n", 0, token.start_index)
    return _TemplateFailure(kind, detail, lines_before)


_LEXER_SCAN_BUDGET = 2_000_000
"""Characters Liquid's lexer may scan for closing delimiters: under a second of work."""
_UNCLOSED_OPENERS = (
    (re.compile(r"\}\}"), re.compile(r"(?=\{\{)")),
    (re.compile(r"%\}"), re.compile(r"(?=\{%-?\s*[#\w])")),
    (re.compile(r"\{%-?\s*endraw\s*-?%\}"), re.compile(r"\{%-?\s*raw\s*-?%\}")),
    (re.compile(r"\{%-?\s*enddoc\s*-?%\}"), re.compile(r"\{%-?\s*doc\s*-?%\}")),
)


def _unclosed_scan_problem(template: str) -> _TemplateFailure | None:
    """Liquid's lexer looks for the closing delimiter of every ``{{``, ``{%``, ``raw`` and
    ``doc`` from where it opens to the end of the template, so openers that are never closed
    cost quadratic time (minutes for ``{{{{...``) in a parse nothing can interrupt. Their cost
    is measured here, in linear time, before Liquid sees the template."""
    cost = 0
    first: int | None = None
    for closer, opener in _UNCLOSED_OPENERS:
        last_close = max((match.end() for match in closer.finditer(template)), default=0)
        for match in opener.finditer(template, last_close):
            cost += len(template) - match.start()
            first = match.start() if first is None else min(first, match.start())
    if cost <= _LEXER_SCAN_BUDGET or first is None:
        return None
    return _TemplateFailure(
        "template_parse_error",
        "too many '{{' or '{%' are never closed",
        template.count("\n", 0, first),
    )


def _parse_and_render(
    template: str, renders: list[Mapping[str, object]], deadline: float
) -> list[str] | _TemplateFailure:
    """Never raises: it runs on its own thread, where an exception would only be printed."""
    unclosed = _unclosed_scan_problem(template)
    if unclosed is not None:
        return unclosed
    try:
        parsed = _ENVIRONMENT.from_string(template)
    except Exception as error:
        return _failure("template_parse_error", error)
    outputs: list[str] = []
    for variables in renders:
        try:
            context = _BoundedContext(parsed, globals=parsed.make_globals(variables))
            context.deadline = deadline
            buffer = LimitedStringIO(limit=OUTPUT_LIMIT_BYTES)
            parsed.render_with_context(context, buffer)
        except Exception as error:
            return _failure("template_render_error", error)
        outputs.append(buffer.getvalue())
    return outputs


def _bounded_render(
    template: str, renders: list[Mapping[str, object]]
) -> list[str] | _TemplateFailure:
    """Parse once and render once per variable set, within :data:`RENDER_TIME_LIMIT_S`.

    The work runs on a daemon thread so the caller gets an answer at the deadline whatever
    the template does; a thread given up on stops itself at its next deadline check."""
    deadline = time.monotonic() + RENDER_TIME_LIMIT_S
    outcome: list[list[str] | _TemplateFailure] = []
    worker = threading.Thread(
        target=lambda: outcome.append(_parse_and_render(template, renders, deadline)),
        name="jidoka-template",
        daemon=True,
    )
    worker.start()
    worker.join(RENDER_TIME_LIMIT_S + _JOIN_GRACE_S)
    if not outcome:
        return _TemplateFailure("template_render_error", _TIME_LIMIT_DETAIL)
    return outcome[0]


def issue_context(issue: Issue) -> dict[str, Any]:
    """The ``issue`` template variable: every normalised field, keys as strings."""
    data = issue.model_dump(mode="json")
    return {str(key): value for key, value in data.items()}


def render_prompt(template: str, issue: Issue, attempt: int | None) -> str:
    """Render the body for one attempt; ``attempt`` is None on the first one. Blocks for at
    most about :data:`RENDER_TIME_LIMIT_S`: async callers should run it in a thread."""
    outcome = _bounded_render(template, [{"issue": issue_context(issue), "attempt": attempt}])
    if isinstance(outcome, _TemplateFailure):
        where = f" (line {outcome.lines_before + 1})" if outcome.lines_before is not None else ""
        raise PromptError(f"{outcome.kind}{where}: {outcome.detail}")
    return outcome[0]


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
    a first attempt and on a retry, so unknown variables and filters fail at ``jidoka check``.
    The same limits as :func:`render_prompt` apply, within one time limit for all three."""
    sample = issue_context(SAMPLE_ISSUE)
    outcome = _bounded_render(
        template, [{"issue": sample, "attempt": None}, {"issue": sample, "attempt": 2}]
    )
    if not isinstance(outcome, _TemplateFailure):
        return []
    where = ""
    if outcome.lines_before is not None:
        where = f" (line {outcome.lines_before + first_line})"
    return [
        Problem(
            path="(prompt)",
            message=f"{outcome.kind}{where}: {outcome.detail}",
            hint="the template sees 'issue' (id, identifier, title, description, priority, "
            "state, branch_name, url, labels, blocked_by, created_at, updated_at, "
            "description_cut) and 'attempt'",
        )
    ]


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
