"""Real workflows with a bug planted, for tests of what happens when Jidoka's own code fails.

A module of its own, importing through the sandbox's pass-through: the workflow sandbox
re-imports a workflow's module, and a test module imports far more than a workflow may."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from jidoka.models import AgentRunResult, AttemptRecord, Evidence
    from jidoka.outcomes import Outcome
    from jidoka.payloads import IssueResult, IssueWorkflowInput
    from workflows.issue import IssueWorkflow


@workflow.defn(name="IssueWorkflow")
class IssueWorkflowWithABug(IssueWorkflow):
    """The real issue workflow, except that recording an attempt raises."""

    @workflow.run
    async def run(self, input: IssueWorkflowInput) -> IssueResult:
        return await super().run(input)

    def _finish_attempt(
        self,
        record: AttemptRecord,
        agent: AgentRunResult | None,
        evidence: Evidence | None,
        outcome: Outcome,
        detail: str,
    ) -> None:
        raise KeyError("a bug in the workflow")
