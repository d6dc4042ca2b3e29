"""What the world sees of an issue while it runs: its search attributes (the Web UI's filters,
kept in step with every change of phase) and its reports to the line (``issue_report``).

A report is a signal, and a signal costs history in both workflows, so an issue reports only
what its line acts on: phases that free or hold a slot, its own ship, a back-off, its end
(``Phase.concerns_the_line``), a move of its own the line would otherwise read as a person's
edit, a rate limit, and its tokens at once when a fleet budget counts them. Everything else
(the tokens and outcome of an attempt) travels with the next report. Progress between (preparing,
running the agent, verifying) is in the ``JidokaPhase`` search attribute, which ``jidoka line
status`` reads. Deterministic code only.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

from workflows.common import LEAN_HISTORY, LEAN_STEPS, SearchAttributes, patched, signal_quietly

with workflow.unsafe.imports_passed_through():
    from jidoka import policy
    from jidoka import search_attributes as sa
    from jidoka.config import WorkflowConfig
    from jidoka.models import IssueState, RateLimitInfo
    from jidoka.outcomes import Outcome, Phase, ReconcileAction
    from jidoka.payloads import IssueReport


class IssueReports:
    """``line_workflow_id`` is None for an issue started on its own: then only the search
    attributes are kept up to date."""

    def __init__(self, state: IssueState, issue_id: str, line_workflow_id: str | None) -> None:
        self._s = state
        self._issue_id = issue_id
        self._line = line_workflow_id
        self._attributes = SearchAttributes()
        self._seeded = False
        self._tokens_delta = 0
        self._outcome: Outcome | None = None
        self._rate_limit: RateLimitInfo | None = None
        self.announced_moving_to: str | None = None
        """The state the last report said the issue was moving to (None after any other)."""
        self.tokens_count_now = False
        """A fleet token budget is configured: the line needs an attempt's tokens at once."""
        self.priced = False
        """WORKFLOW.md has ``pricing:``: the cost is kept in the ``JidokaCost`` attribute too
        (never upserted otherwise, so a server without it registered keeps working)."""
        self._line_knows: Phase | None = (
            Phase.QUEUED if workflow.info().continued_run_id is None else None
        )
        """The phase the line last heard (None: not known in this run)."""

    def upsert(self, *pairs: tuple[SearchAttributeKey[Any], object]) -> None:
        """One upsert (one history event) with what changed, the token count included."""
        if not self._seeded:
            self._seeded = True
            if patched(LEAN_HISTORY):
                self._attributes.seed()
        counters = self._s.counters
        figures: list[tuple[SearchAttributeKey[Any], object]] = [
            (sa.TOKENS, counters.tokens.total_tokens)
        ]
        if self.priced:
            figures.append((sa.COST, counters.cost))
        self._attributes.upsert(*pairs, *figures)

    def upsert_with_next(self, *pairs: tuple[SearchAttributeKey[Any], object]) -> None:
        """Upsert with the next phase change (histories before the patch: now)."""
        if patched(LEAN_HISTORY):
            self._attributes.hold(*pairs)
        else:
            self.upsert(*pairs)

    def attempt_ended(
        self, tokens: int, outcome: Outcome, rate_limit: RateLimitInfo | None
    ) -> None:
        """Hold an attempt's figures for the next report."""
        self._tokens_delta += tokens
        self._outcome = outcome
        self._rate_limit = rate_limit or self._rate_limit

    async def enter(
        self, phase: Phase, *, identifier: str, final: bool = False, moving_to: str | None = None
    ) -> None:
        """Move to ``phase``: the search attributes and the line hear it as it happens."""
        s = self._s
        before = s.phase
        s.phase = phase
        if phase is not Phase.BACKING_OFF:
            s.retry_at = None
        self.upsert((sa.PHASE, phase.value), (sa.HALTED, phase is Phase.HALTED))
        if final or moving_to is not None or self._line_needs(before, phase):
            await self.report(identifier=identifier, final=final, moving_to=moving_to)

    def line_would_misread(self, target: str, config: WorkflowConfig) -> bool:
        """Would the line, seeing the issue in ``target`` before its next report, take the
        issue's own move for a person's edit? Then it must hear of the move first."""
        if not workflow.patched(LEAN_STEPS) or self._line_knows is None:
            return True
        action = policy.reconcile_action(target, self._line_knows, config)
        return action not in (ReconcileAction.KEEP, ReconcileAction.REVIEW_WATCHED)

    def _line_needs(self, before: Phase, phase: Phase) -> bool:
        if not workflow.patched(LEAN_STEPS):
            return phase is not before or self._held()
        if phase is not before and (before.concerns_the_line or phase.concerns_the_line):
            return True
        urgent_tokens = self.tokens_count_now and self._tokens_delta != 0
        return urgent_tokens or (self._rate_limit is not None and self._rate_limit.exhausted)

    async def report(
        self, *, identifier: str, final: bool = False, moving_to: str | None = None
    ) -> None:
        """Tell the line where this issue stands, with what the last attempt spent."""
        if self._line is None:
            return
        s = self._s
        report = IssueReport(
            issue_id=self._issue_id,
            identifier=identifier,
            workflow_id=workflow.info().workflow_id,
            phase=s.phase,
            attempt=s.counters.attempts,
            tokens_total=s.counters.tokens.total_tokens,
            tokens_delta=self._tokens_delta,
            outcome=self._outcome or s.last_outcome,
            rate_limit=self._rate_limit,
            final=final,
            at=workflow.now(),
            moving_to=moving_to,
            retry_at=s.retry_at,
            infra_failures=s.counters.infra_failures,
        )
        self._tokens_delta, self._outcome, self._rate_limit = 0, None, None
        self.announced_moving_to = moving_to
        self._line_knows = s.phase
        await signal_quietly(self._line, "issue_report", report)

    def _held(self) -> bool:
        return self._tokens_delta != 0 or self._outcome is not None or self._rate_limit is not None
