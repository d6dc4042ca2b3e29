"""Temporal plumbing both workflows share, written once: named retry policies, the
continue-as-new check, reading why an activity failed, search-attribute upserts that write only
what changed, signals that tolerate a closed target, and the rule every resume must meet.

Deterministic code only (it runs inside the workflows).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.config import load_workflow_config, reload_workflow_config
    from jidoka.models import LoadedWorkflow
    from jidoka.payloads import LoadWorkflowInput, ReloadedWorkflow, ReloadWorkflowInput

ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")

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
    return info.get_current_history_size() > HISTORY_SOFT_BYTES and patched("history-bytes-limit")


# ---------------------------------------------------------------------------------------------
# Short steps on the shared queue
# ---------------------------------------------------------------------------------------------

LEAN_STEPS = "lean-steps"
"""The patch that runs the short steps of the shared queue (config reads, tracker calls) as
local activities (one marker event each, in the workflow task that asked for them, instead of
three events and a workflow task of their own), and sends an issue's reports to its line only
when the line acts on them. Histories recorded before it replay on the old branch."""


def start_lean_steps() -> bool:
    """Ask for ``lean-steps`` in the run's first activation, before any command: the first thing
    each workflow's ``run`` does. A patch first asked for just after a local activity resolved
    is seen live in the workflow task that ran the activity but on replay in the next one, so
    replay would take the other branch; asked here, the answer is fixed for the whole run."""
    return workflow.patched(LEAN_STEPS)


def patched(patch_id: str) -> bool:
    """``workflow.patched`` for the patches older than ``lean-steps``. A run that started on
    ``lean-steps`` was started by code that has every older patch, so they are all on with no
    marker of their own (and none is first asked for after a local activity); a run started
    before asks for each where it always did, and replays as it ran."""
    return workflow.patched(LEAN_STEPS) or workflow.patched(patch_id)


async def run_step(
    activity: Callable[[ArgT], Awaitable[ResultT]],
    arg: ArgT,
    *,
    start_to_close: timedelta,
    retry_policy: RetryPolicy,
) -> ResultT:
    """A short call on the shared queue (WORKFLOW.md, the tracker).

    It runs as a local activity: on the worker that runs the workflow, which has the same
    activities and credentials as any worker of the shared queue, and recorded as one marker
    with its result (its input, which repeats the config, is not stored). Retries, timeouts and
    the errors the caller sees are those of an activity; a worker that dies mid-call has the
    call run again by the next worker, like an activity. What must run on a chosen host (the
    workspace, the agent, hooks) stays an ordinary activity."""
    if workflow.patched(LEAN_STEPS):
        return await run_local(
            activity, arg, start_to_close=start_to_close, retry_policy=retry_policy
        )
    return await workflow.execute_activity(
        activity, arg, start_to_close_timeout=start_to_close, retry_policy=retry_policy
    )


async def run_local(
    activity: Callable[[ArgT], Awaitable[ResultT]],
    arg: ArgT,
    *,
    start_to_close: timedelta,
    retry_policy: RetryPolicy,
) -> ResultT:
    """A local activity whose failure is always an ActivityError, as an activity's is."""
    try:
        return await workflow.execute_local_activity(
            activity, arg, start_to_close_timeout=start_to_close, retry_policy=retry_policy
        )
    except ActivityError:
        raise
    except FailureError as error:
        # A local activity can fail with its bare cause (a non-retryable application error,
        # a timeout): callers classify failures by an ActivityError's cause.
        raise ActivityError(
            f"{_name(activity)} failed",
            scheduled_event_id=0,
            started_event_id=0,
            identity="",
            activity_type=_name(activity),
            activity_id="",
            retry_state=None,
        ) from error


def _name(activity: Callable[..., object]) -> str:
    return getattr(activity, "__name__", "activity")


# ---------------------------------------------------------------------------------------------
# The line's WORKFLOW.md
# ---------------------------------------------------------------------------------------------


async def load_config(path: str) -> LoadedWorkflow:
    """Read and validate WORKFLOW.md on a worker; raises ActivityError when it is invalid
    (each workflow decides what an invalid edit means for it)."""
    return await run_step(
        load_workflow_config,
        LoadWorkflowInput(path=path),
        start_to_close=timedelta(seconds=30),
        retry_policy=QUICK_RETRY,
    )


async def reload_config(path: str, fingerprint: str | None) -> ReloadedWorkflow:
    """Like :func:`load_config`, but the config comes back only when it differs from the one
    ``fingerprint`` names: a line re-reads its file every tick, and most ticks it is the same."""
    return await run_local(
        reload_workflow_config,
        ReloadWorkflowInput(path=path, known_fingerprint=fingerprint),
        start_to_close=timedelta(seconds=30),
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
