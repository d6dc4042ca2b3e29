"""Agent results this worker finished, kept a while so that a finished agent is never lost.

When the Temporal server is unreachable as an agent finishes (an outage, a restart), the
``run_agent`` completion may not reach it before the activity's heartbeat timeout fires: the
workflow sees a lost worker although the agent did its work. The workflow then asks the host
(``recover_agent_result``); if this process still holds the result, the attempt is judged on it
instead of being run again.
"""

from __future__ import annotations

from collections import OrderedDict

from temporalio import activity

from jidoka.models import AgentRunResult
from jidoka.payloads import RecoverAgentInput

KEPT = 256
"""Results kept per worker process: far more than its agents finish in a heartbeat timeout."""


class FinishedRuns:
    def __init__(self, size: int = KEPT) -> None:
        self._size = size
        self._runs: OrderedDict[tuple[str, int], AgentRunResult] = OrderedDict()

    def remember(self, workflow_id: str, attempt: int, result: AgentRunResult) -> None:
        self._runs[(workflow_id, attempt)] = result
        self._runs.move_to_end((workflow_id, attempt))
        while len(self._runs) > self._size:
            self._runs.popitem(last=False)

    def recall(self, workflow_id: str, attempt: int) -> AgentRunResult | None:
        return self._runs.get((workflow_id, attempt))


FINISHED_RUNS = FinishedRuns()


@activity.defn(name="recover_agent_result")
async def recover_agent_result(input: RecoverAgentInput) -> AgentRunResult | None:
    """The result of an agent run this host finished, if it still has it."""
    return FINISHED_RUNS.recall(activity.info().workflow_id or "", input.attempt)
