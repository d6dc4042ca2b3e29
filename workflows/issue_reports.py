"""What the world sees of an issue while it runs: its search attributes (the Web UI's filters)
and its reports to the line (``issue_report``), kept in step with every change of phase.

An attempt's tokens, outcome and rate limit travel with the next report rather than in a
signal of their own; a report also says which tracker state the issue is about to move itself
to, so the line never reads the issue's own move as a person's edit. Deterministic code only.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

from workflows.common import LEAN_HISTORY, SearchAttributes, signal_quietly

with workflow.unsafe.imports_passed_through():
    from jidoka import search_attributes as sa
    from jidoka.models import IssueState, RateLimitInfo
    from jidoka.outcomes import Outcome, Phase
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

    def upsert(self, *pairs: tuple[SearchAttributeKey[Any], object]) -> None:
        """One upsert (one history event) with what changed, the token count included."""
        if not self._seeded:
            self._seeded = True
            if workflow.patched(LEAN_HISTORY):
                self._attributes.seed()
        self._attributes.upsert(*pairs, (sa.TOKENS, self._s.counters.tokens.total_tokens))

    def upsert_with_next(self, *pairs: tuple[SearchAttributeKey[Any], object]) -> None:
        """Upsert with the next phase change (histories before the patch: now)."""
        if workflow.patched(LEAN_HISTORY):
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
        changed = phase is not s.phase
        s.phase = phase
        if phase is not Phase.BACKING_OFF:
            s.retry_at = None
        self.upsert((sa.PHASE, phase.value), (sa.HALTED, phase is Phase.HALTED))
        if changed or final or moving_to is not None or self._held():
            await self.report(identifier=identifier, final=final, moving_to=moving_to)

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
        await signal_quietly(self._line, "issue_report", report)

    def _held(self) -> bool:
        return self._tokens_delta != 0 or self._outcome is not None or self._rate_limit is not None
