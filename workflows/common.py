"""Temporal plumbing both workflows share, written once: named retry policies, the
continue-as-new check, reading why an activity failed, search-attribute upserts that write only
what changed, signals that tolerate a closed target, and the rule every resume must meet.

Deterministic code only (it runs inside the workflows).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.config import load_workflow_config
    from jidoka.models import LoadedWorkflow
    from jidoka.payloads import LoadWorkflowInput

# ---------------------------------------------------------------------------------------------
# Retry policies. Activity retries are for transient infrastructure errors only: a failed agent,
# hook or verdict is a workflow decision with a visible counter, never a blind retry.
# ---------------------------------------------------------------------------------------------

NO_RETRY = RetryPolicy(maximum_attempts=1)
"""Agents, hooks and anything whose second run is a decision: the workflow judges the first."""

QUICK_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
"""Local, idempotent steps (load the config, prepare or preserve a workspace, start workflows):
a blip passes in seconds; anything longer is a real failure the caller must see."""

TRACKER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
)
"""An issue's own tracker reads and writes: they must land, so ride out about two minutes of a
provider's trouble. Deterministic errors (refused, not found, bad credentials) are
non-retryable and come back at once."""

TICK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=4,
)
"""The line's tracker calls: the line ticks again in seconds, so give up sooner and let the
next tick try; a failure shows in the line's status meanwhile."""

FETCH_RETRY = RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=1))
"""The line's candidate fetch: tried again every tick anyway, and consecutive failures are
counted (and halt the line past a cap), so retrying inside the tick only delays the count."""

# ---------------------------------------------------------------------------------------------
# Continue-as-new
# ---------------------------------------------------------------------------------------------

HISTORY_SOFT_LIMIT = 8000
"""Events after which a workflow continues as new even if Temporal has not suggested it yet."""


def write_keys() -> str:
    """The prefix of every tracker write's idempotency key in this workflow's life: its id and
    its first run (kept across continue-as-new), so retries dedupe and a later life of the same
    issue (re-dispatched after a ship or a release) writes its own comments."""
    info = workflow.info()
    return f"{info.workflow_id}/{info.first_execution_run_id}"


HISTORY_SOFT_BYTES = 2 * 1024 * 1024
"""Bytes after which a workflow continues as new: a line's history grows by its ticks' payloads
(5 MB runs were measured at 1,000 issues before this), far from Temporal's 10 MB warning."""


def history_is_long(limit: int | None = None) -> bool:
    info = workflow.info()
    if info.is_continue_as_new_suggested() or info.get_current_history_length() > (
        limit or HISTORY_SOFT_LIMIT
    ):
        return True
    return info.get_current_history_size() > HISTORY_SOFT_BYTES and workflow.patched(
        "history-bytes-limit"
    )


# ---------------------------------------------------------------------------------------------
# The line's WORKFLOW.md
# ---------------------------------------------------------------------------------------------


async def load_config(path: str) -> LoadedWorkflow:
    """Read and validate WORKFLOW.md on a worker; raises ActivityError when it is invalid
    (each workflow decides what an invalid edit means for it)."""
    return await workflow.execute_activity(
        load_workflow_config,
        LoadWorkflowInput(path=path),
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=QUICK_RETRY,
    )


# ---------------------------------------------------------------------------------------------
# Why an activity failed
# ---------------------------------------------------------------------------------------------

DETERMINISTIC_ERRORS = frozenset({"PayloadsTooLarge"})
"""Error types that fail the same way every time, although the SDK marks them retryable."""


def cause_type(error: ActivityError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def cause_message(error: ActivityError) -> str:
    cause = error.cause
    return str(cause.message if isinstance(cause, ApplicationError) else cause or error)


def is_permanent(error: ActivityError) -> bool:
    """Retrying cannot help: the activity said so, or the error is one that repeats."""
    cause = error.cause
    return isinstance(cause, ApplicationError) and (
        cause.non_retryable or cause.type in DETERMINISTIC_ERRORS
    )


def timeout_type(error: ActivityError) -> TimeoutType | None:
    cause = error.cause
    return cause.type if isinstance(cause, ActivityTimeoutError) else None


def host_lost(error: ActivityError) -> bool:
    """The host stopped answering: no heartbeat, or nobody picked the activity up."""
    return timeout_type(error) in (TimeoutType.HEARTBEAT, TimeoutType.SCHEDULE_TO_START)


# ---------------------------------------------------------------------------------------------
# Search attributes and signals
# ---------------------------------------------------------------------------------------------


LEAN_HISTORY = "lean-history"
"""The patch of the leaner issue history: WORKFLOW.md and the issue read once per attempt, no
upsert of what the workflow started with, an attempt's outcome upserted with the next phase.
Histories recorded before it replay on the old branch."""


class SearchAttributes:
    """Upserts only what changed since the last upsert: every upsert is a history event."""

    def __init__(self) -> None:
        self._last: dict[str, object] = {}
        self._held: list[tuple[SearchAttributeKey[Any], object | None]] = []

    def seed(self) -> None:
        """Count what the workflow started with as already upserted."""
        started: TypedSearchAttributes = workflow.info().typed_search_attributes
        pairs: Sequence[SearchAttributePair[Any]] = started.search_attributes  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        for pair in pairs:
            self._last.setdefault(pair.key.name, cast(object, pair.value))

    def hold(self, *pairs: tuple[SearchAttributeKey[Any], object | None]) -> None:
        """Upsert these with the next upsert (one event instead of two)."""
        self._held.extend(pairs)

    def upsert(self, *pairs: tuple[SearchAttributeKey[Any], object | None]) -> None:
        pairs = (*self._held, *pairs)
        self._held = []
        updates: list[SearchAttributeUpdate[Any]] = []
        for key, value in pairs:
            if value is None or self._last.get(key.name) == value:
                continue
            self._last[key.name] = value
            updates.append(key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]


async def signal_quietly(workflow_id: str, signal: str, payload: Any) -> bool:
    """Signal another workflow; a closed or missing one is logged, never a reason to stop."""
    try:
        await workflow.get_external_workflow_handle(workflow_id).signal(signal, payload)
    except Exception as error:
        workflow.logger.warning("could not signal %s (%s): %s", workflow_id, signal, error)
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The andon's rule for a resume
# ---------------------------------------------------------------------------------------------


def resume_problem(root_cause: str, operator: str) -> str | None:
    """Why a resume (or an operator's decision) must be refused: it names no cause or no one."""
    missing = [
        name
        for name, value in (("root_cause", root_cause), ("operator", operator))
        if not value.strip()
    ]
    if missing:
        return f"{' and '.join(missing)} required: name what was wrong and who decided"
    return None
