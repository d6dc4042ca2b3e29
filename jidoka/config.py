"""The typed view of a ``WORKFLOW.md`` front matter (every key: docs/workflow-file.md#keys).

Two layers, on purpose:

* the pydantic models below describe the *shape* (types, unknown keys rejected, defaults);
  they are also the payload that travels through Temporal, so they must stay cheap to rebuild
  from JSON and must never hold a secret: secret fields only accept ``$VAR`` references;
* :func:`semantic_problems` checks the rules that span several keys (state categories, verdict
  routes, ...) and names each problem by its key path. The loader runs both.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal, assert_never
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from jidoka.outcomes import AgentKind, TrackerKind

ENV_REF_PATTERN = re.compile(r"^\$[A-Za-z_][A-Za-z0-9_]*$")
HALT_VERDICT = "HALT"
LINE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"

SecretRef = Annotated[str, StringConstraints(pattern=ENV_REF_PATTERN.pattern)]
"""A secret is written as ``$NAME`` and resolved inside activities only."""
NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
PositiveInt = Annotated[int, Field(gt=0)]
Seconds = Annotated[int, Field(gt=0, le=7 * 24 * 3600)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the keys the file set: the config travels in most activity inputs, and every
        default it repeats costs history bytes. Parsing restores the defaults; frozen, so
        nothing set later can be left out."""
        dumped: dict[str, Any] = handler(self)
        return {key: value for key, value in dumped.items() if key in self.model_fields_set}


class TrackerStates(Section):
    """State categories shared by every tracker kind. A state belongs to one category only."""

    active_states: list[NonEmpty] = Field(min_length=1)
    working_state: NonEmpty | None = None
    paused_states: list[NonEmpty] = Field(default_factory=list[str])
    terminal_states: list[NonEmpty] = Field(min_length=1)
    backlog_states: list[NonEmpty] = Field(default_factory=list[str])
    done_state: NonEmpty
    """Where shipped work goes. Required, no default: the article's fifth why."""
    paused_labels: list[NonEmpty] = Field(default_factory=lambda: ["awaiting-answers"])
    """Labels that mark an issue as paused whatever its state; such an issue is never closed."""
    required_labels: list[NonEmpty] = Field(default_factory=list[str])
    """When set, only issues carrying every one of these labels are dispatched."""


class LocalTrackerConfig(TrackerStates):
    kind: Literal[TrackerKind.LOCAL]
    board: NonEmpty
    """Folder of ``<IDENTIFIER>.md`` files; relative to the WORKFLOW.md folder."""


class GitHubTrackerConfig(TrackerStates):
    kind: Literal[TrackerKind.GITHUB]
    repo: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]
    api_key: SecretRef = "$GITHUB_TOKEN"
    endpoint: NonEmpty = "https://api.github.com"
    state_labels: dict[NonEmpty, NonEmpty] = Field(default_factory=dict[str, str])
    """State name -> label. An open issue is in the state whose label it carries."""
    default_open_state: NonEmpty | None = None
    """State of an open issue that carries no state label (None: such issues are ignored)."""
    closed_states: dict[NonEmpty, Literal["completed", "not_planned"]] = Field(
        default_factory=dict[str, Literal["completed", "not_planned"]]
    )
    """State name -> GitHub ``state_reason`` for closed issues."""
    priority_labels: dict[NonEmpty, int] = Field(default_factory=dict[str, int])
    """Label -> priority (1 = most urgent); an issue with several takes the lowest."""
    pull_request_base: NonEmpty | None = None
    """Base branch of pull requests opened on ship (default: ``workspace.base_branch``)."""
    draft_pull_requests: bool = False


class LinearTrackerConfig(TrackerStates):
    kind: Literal[TrackerKind.LINEAR]
    project_slug: NonEmpty
    api_key: SecretRef = "$LINEAR_API_KEY"
    endpoint: NonEmpty = "https://api.linear.app/graphql"
    team_key: NonEmpty | None = None


JIRA_PRIORITY_MAP: dict[str, int] = {
    "Highest": 1,
    "High": 2,
    "Medium": 3,
    "Low": 4,
    "Lowest": 5,
}
"""Jira's default priority scheme, most urgent first."""

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
JQL_ORDER_BY = re.compile(r"(?i)\border\s+by\b")


class JiraTrackerConfig(TrackerStates):
    kind: Literal[TrackerKind.JIRA]
    base_url: NonEmpty
    """The site: ``https://your-site.atlassian.net`` (Cloud) or the Data Center base URL,
    context path included (``https://jira.example.com/jira``)."""
    project_key: NonEmpty | None = None
    """Only issues of this project (``ENG``). At least one of ``project_key`` and ``jql``."""
    jql: NonEmpty | None = None
    """Extra JQL ANDed to every listing (``labels = jidoka``), without ``ORDER BY``."""
    email: SecretRef = "$JIRA_EMAIL"
    """Cloud: the account's email. Data Center: the username; empty for a personal access
    token."""
    api_token: SecretRef = "$JIRA_API_TOKEN"
    deployment: Literal["cloud", "data_center"] = "cloud"
    priority_map: dict[NonEmpty, int] = Field(default_factory=lambda: dict(JIRA_PRIORITY_MAP))
    """Jira priority name -> priority (1 = most urgent); names match without regard to case.
    A priority not listed reads as no priority."""

    @field_validator("base_url")
    @classmethod
    def _a_site_url(cls, value: str) -> str:
        parts = urlsplit(value)
        loopback = parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS
        if parts.scheme != "https" and not loopback:
            raise ValueError(
                "must be an https:// URL (https://your-site.atlassian.net); plain http only "
                "to this machine"
            )
        if not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be the site's base URL, without query or fragment")
        return value.rstrip("/")

    @field_validator("project_key")
    @classmethod
    def _a_project_key(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} is not a Jira project key (e.g. ENG)")
        return value

    @field_validator("jql")
    @classmethod
    def _no_order_by(cls, value: str | None) -> str | None:
        if value is not None and JQL_ORDER_BY.search(value):
            raise ValueError(
                "must not contain ORDER BY: it is ANDed into the adapter's own query, "
                "which sets the order"
            )
        return value

    @model_validator(mode="after")
    def _scoped(self) -> JiraTrackerConfig:
        if self.project_key is None and self.jql is None:
            raise ValueError("set tracker.project_key, tracker.jql, or both")
        return self


GITLAB_PROJECT_PATTERN = (
    r"^(?:[1-9][0-9]*|[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+)$"
)


class GitLabTrackerConfig(TrackerStates):
    kind: Literal[TrackerKind.GITLAB]
    project: Annotated[str, StringConstraints(pattern=GITLAB_PROJECT_PATTERN)]
    """``group/sub/app`` (the project's path, as in its URL) or the numeric project id."""
    api_key: SecretRef = "$GITLAB_TOKEN"
    base_url: NonEmpty = "https://gitlab.com"
    """The instance (self-managed: ``https://gitlab.example.com``); the API is
    ``<base_url>/api/v4``."""
    state_labels: dict[NonEmpty, NonEmpty] = Field(default_factory=dict[str, str])
    """State name -> label, spelled as in GitLab (its label filter is exact). Open and closed
    states alike; scoped labels (``jidoka::todo``) welcome."""
    default_open_state: NonEmpty | None = None
    """State of an open issue that carries no open-state label (None: such issues are ignored)."""
    closed_states: list[NonEmpty] = Field(default_factory=list[str])
    """States that mean closed. A closed issue without a closed-state label reads as the first:
    list first the state a person's plain "Close issue" should mean."""
    priority_labels: dict[NonEmpty, int] = Field(default_factory=dict[str, int])
    """Label -> priority (1 = most urgent); an issue with several takes the lowest."""
    merge_request_target: NonEmpty | None = None
    """Target branch of merge requests opened on ship (default: ``workspace.base_branch``)."""
    draft_merge_requests: bool = False

    @field_validator("project", mode="before")
    @classmethod
    def _numeric_id(cls, value: object) -> object:
        return gitlab_project_text(value)


def gitlab_project_text(value: object) -> object:
    """YAML reads ``project: 1234`` as an int; the id is kept as text like a path."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def label_scope(label: str) -> str | None:
    """The scope of a scoped label, lowercase: everything before its last ``::`` (GitLab's
    rule, so ``a::b::c`` is in scope ``a::b``); None for an unscoped label."""
    scope, sep, _ = label.strip().rpartition("::")
    return scope.lower() if sep and scope else None


TrackerConfig = Annotated[
    LocalTrackerConfig
    | GitHubTrackerConfig
    | LinearTrackerConfig
    | JiraTrackerConfig
    | GitLabTrackerConfig,
    Field(discriminator="kind"),
]


class WorkspaceConfig(Section):
    repo: NonEmpty
    """A path (relative to the WORKFLOW.md folder) or a git URL, cloned once per issue."""
    root: NonEmpty = "./.jidoka/workspaces"
    base_branch: NonEmpty = "main"
    branch_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._/-]*$")] = "jidoka/"
    push_on_ship: bool = True
    """Push the work branch to the repository's ``origin`` when an issue ships."""


class HooksConfig(Section):
    after_create: str | None = None
    before_run: str | None = None
    after_run: str | None = None
    before_remove: str | None = None
    verify: str | None = None
    """Run after a claimed success; its failure output feeds the next continuation."""
    timeout_s: Seconds = 60
    verify_timeout_s: Seconds | None = None
    """Defaults to ``timeout_s``."""


class UsageFields(Section):
    """Where a JSON-lines agent reports token usage (dotted paths into each event)."""

    match: dict[NonEmpty, str] = Field(default_factory=dict[str, str])
    """Field path -> value an event must have to be a usage event (e.g. ``type: result``)."""
    input_tokens: NonEmpty | None = None
    output_tokens: NonEmpty | None = None
    total_tokens: NonEmpty | None = None
    cached_input_tokens: NonEmpty | None = None
    """The part of the input read from the provider's cache (priced as ``cached_input``)."""
    cumulative: bool = False
    """True when each event repeats the running total; False when events are deltas."""


class CodexSettings(Section):
    approval_policy: Literal["untrusted", "on-request", "never"] = "never"
    sandbox: Literal["read-only", "workspace-write", "danger-full-access"] = "workspace-write"
    network_access: bool = False
    model: NonEmpty | None = None
    read_timeout_s: Seconds = 10
    user_input: Literal["fail", "answer"] = "fail"
    """On a user-input request: fail the attempt, or answer with a fixed text."""


class ClaudeSettings(Section):
    permission_mode: Literal["acceptEdits", "auto", "default", "dontAsk", "plan"] = "acceptEdits"
    allowed_tools: list[NonEmpty] = Field(
        default_factory=lambda: ["Bash", "Edit", "Write", "Read", "Glob", "Grep"]
    )
    disallowed_tools: list[NonEmpty] = Field(default_factory=lambda: ["AskUserQuestion"])
    model: NonEmpty | None = None
    max_budget_usd: Annotated[float, Field(gt=0)] | None = None
    """``--max-budget-usd``: Claude's own spend cap, per process (one process per turn)."""
    max_turns: PositiveInt | None = None
    """``--max-turns``: Claude's own agentic turns (tool round trips) per process; not
    ``budgets.max_turns``, which counts Jidoka's turns (one Claude process each)."""


class AgentConfig(Section):
    kind: AgentKind
    command: NonEmpty | None = None
    """Shell command, run with ``bash -lc`` in the workspace. Defaults per kind."""
    preset: Literal["gemini", "opencode", "aider"] | None = None
    scenario: NonEmpty | None = None
    """``scripted`` agents only: force one scenario instead of reading it from the issue."""
    stall_timeout_s: Seconds = 300
    """Progress clock: no progress event for this long stalls the attempt."""
    silence_timeout_s: Seconds = 900
    """Raw clock: no output at all for this long stalls the attempt."""
    turn_timeout_s: Seconds = 3600
    """Wall clock: the hard cap of one attempt."""
    env: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(
        default_factory=dict[str, str]
    )
    usage: UsageFields | None = None
    codex: CodexSettings = Field(default_factory=CodexSettings)
    claude: ClaudeSettings = Field(default_factory=ClaudeSettings)


class FleetBudget(Section):
    tokens_per_hour: PositiveInt | None = None


class TokenPrices(Section):
    """What one model's tokens cost, per million tokens, in ``pricing.currency``."""

    input: Annotated[float, Field(ge=0)]
    """Prompt tokens read fresh (not from the provider's cache)."""
    cached_input: Annotated[float, Field(ge=0)] | None = None
    """Prompt tokens read from the provider's cache; unset: priced as ``input``."""
    output: Annotated[float, Field(ge=0)]


class PricingConfig(Section):
    """Token prices, so every attempt's cost is known in money as well as in tokens."""

    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    models: dict[NonEmpty, TokenPrices] = Field(default_factory=dict[str, TokenPrices])
    """Model name -> its prices. An attempt whose model has no price has an unknown cost,
    never a cost of zero."""
    model: NonEmpty | None = None
    """The model the line's agent runs, when its own settings do not name one
    (``agent.codex.model`` / ``agent.claude.model`` win); it must be one of ``models``."""


def agent_model(agent: AgentConfig, pricing: PricingConfig | None) -> str | None:
    """The model an agent runs, as far as WORKFLOW.md says: its own setting, else
    ``pricing.model``; None when neither names one (its cost is then unknown)."""
    named: str | None
    match agent.kind:
        case AgentKind.CODEX:
            named = agent.codex.model
        case AgentKind.CLAUDE:
            named = agent.claude.model
        case AgentKind.COMMAND | AgentKind.SCRIPTED:
            named = None
        case _:
            assert_never(agent.kind)
    if named is not None:
        return named
    return pricing.model if pricing is not None else None


class BudgetsConfig(Section):
    max_attempts: PositiveInt = 3
    """Failed attempts the agent is charged with (crash, stall, hook failure) before the line
    stops. Lost hosts and server outages are not the agent's doing: see ``max_infra_failures``."""
    max_infra_failures: PositiveInt = 5
    """Attempts lost to the infrastructure (``worker_lost``) before the issue halts with
    ``infrastructure``; counted apart so a flaky host never uses up the agent's attempts."""
    max_continuations: Annotated[int, Field(ge=0)] = 5
    """Follow-up attempts after a verify failure, a turn limit or uncommitted work."""
    max_turns: PositiveInt = 20
    max_tokens: PositiveInt = 2_000_000
    max_tokens_before_first_commit: PositiveInt = 200_000
    max_cost: Annotated[float, Field(gt=0)] | None = None
    """The issue's spend cap in money (``pricing.currency``); needs a price for the agent's
    model. Checked like ``max_tokens``: the attempt that crosses it is the last."""
    max_wall_time: Annotated[int | str, Field(union_mode="left_to_right")] = "4h"
    """Seconds, or a duration such as ``90m`` / ``4h``: the issue's total time under agents."""
    fleet: FleetBudget = Field(default_factory=FleetBudget)


class BackoffConfig(Section):
    base_s: Seconds = 10
    max_s: Seconds = 300
    continuation_s: Annotated[int, Field(ge=0, le=3600)] = 1


class ConcurrencyConfig(Section):
    max_agents: PositiveInt = 10
    by_state: dict[NonEmpty, PositiveInt] = Field(default_factory=dict[str, int])


class PollingConfig(Section):
    interval_s: Seconds = 30


class LoopGuardConfig(Section):
    max_dispatches: PositiveInt = 3
    window_s: Seconds = 3600


class GuardsConfig(Section):
    loop: LoopGuardConfig = Field(default_factory=LoopGuardConfig)


class TimeoutsConfig(Section):
    """How fast a lost host is noticed: a lost host is an outcome (``worker_lost``), not a hang
    (docs/architecture.md#host-task-queues)."""

    heartbeat_s: Seconds = 30
    """Long activities on a host (agent, hooks) heartbeat; silence this long = worker lost."""
    host_start_s: Seconds = 120
    """A host-pinned activity not picked up within this long = worker lost."""
    slot_wait_s: Seconds = 6 * 3600
    """How long an attempt may wait for an agent slot on its host (``JIDOKA_MAX_AGENTS``).
    Waiting is its own phase and never counts against the agent's clocks or budgets; past
    this, the issue halts (``infrastructure``) instead of waiting unseen."""


EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class SandboxMode(StrEnum):
    BWRAP = "bwrap"
    """Agents and hooks run in bubblewrap: their own PID namespace, the system read-only, only
    their folder writable, WORKFLOW.md, the board, other workspaces and the worker's state out
    of sight."""
    NONE = "none"
    """No sandbox: the agent can read and change whatever the worker's user can. A risk that
    ``jidoka check`` and the line's status report."""


class SandboxConfig(Section):
    """Where agents and repository hooks run (docs/trust-boundary.md)."""

    mode: SandboxMode = SandboxMode.BWRAP
    network: bool | None = None
    """Whether the agent may use the network. Default: off for the scripted agent, on for the
    others (they call a model)."""
    read_only: list[NonEmpty] = Field(default_factory=list[str])
    """Paths on the worker bound read-only into the sandbox (an agent CLI's own credentials,
    e.g. ``~/.codex``); under the worker's home they appear under the sandbox's home."""
    writable: list[NonEmpty] = Field(default_factory=list[str])
    """Paths on the worker bound writable at the same place (a shared build cache). Every
    agent of the line can change them, and what one writes another may run: keep them to
    caches."""
    pass_env: list[EnvName] = Field(default_factory=list[str])
    """Names of the worker's environment variables an agent or hook may see (besides the fixed
    base and ``JIDOKA_*``). Secrets are passed with ``agent.env: {NAME: $NAME}`` instead."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return {"mode": value} if isinstance(value, str) else value


class JudgeConfig(Section):
    """What keeps the agent from weakening its own judge (docs/judge.md)."""

    protected_paths: list[NonEmpty] = Field(default_factory=list[str])
    """Globs of paths the agent may not change without a person's consent (``tests/**``,
    ``.github/workflows/**``, ``pyproject.toml``). ``*`` stays within a folder, ``**`` crosses
    folders, and a glob without a ``/`` matches that name in any folder."""
    test_report: NonEmpty | None = None
    """A JUnit XML report ``verify`` writes, relative to the checkout it runs in (also given to
    it as ``$JIDOKA_TEST_REPORT``). The head's report is compared with the base's."""
    allow_label_prefix: NonEmpty = "allow:"
    """An issue labelled ``allow:<glob>`` may change the protected paths that glob matches."""

    @field_validator("test_report")
    @classmethod
    def _inside_the_checkout(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = value.replace("\\", "/").split("/")
        if value.startswith("/") or ".." in parts or parts[0] in ("~", ".git"):
            raise ValueError(
                "must be a path inside the checkout verify runs in, relative to it "
                "(e.g. reports/junit.xml)"
            )
        return value


class MergeMode(StrEnum):
    MANUAL = "manual"
    """A person merges; Jidoka watches until the change is merged or closed."""
    AUTO = "auto"
    """Jidoka merges, with the head it shipped pinned, once approved and green there."""


class ReviewGitHub(Section):
    """Where a Linear or Jira line's work is reviewed: the GitHub repository its pull requests
    are opened in (a GitHub line reviews in its own tracker's repository)."""

    repo: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]
    api_key: SecretRef = "$GITHUB_TOKEN"
    endpoint: NonEmpty = "https://api.github.com"
    base: NonEmpty | None = None
    """Base branch of the pull requests (default: ``workspace.base_branch``)."""
    draft: bool = False


class ReviewGitLab(Section):
    """Where a Linear or Jira line's work is reviewed: the GitLab project its merge requests
    are opened in (a GitLab line reviews in its own tracker's project)."""

    project: Annotated[str, StringConstraints(pattern=GITLAB_PROJECT_PATTERN)]
    """``group/sub/app`` (the project's path, as in its URL) or the numeric project id."""
    base_url: NonEmpty = "https://gitlab.com"
    """The instance (self-managed: ``https://gitlab.example.com``); the API is
    ``<base_url>/api/v4``. Its host is the only one git is offered the token for."""
    api_key: SecretRef = "$GITLAB_TOKEN"
    target: NonEmpty | None = None
    """Target branch of the merge requests (default: ``workspace.base_branch``)."""
    draft: bool = False

    @field_validator("project", mode="before")
    @classmethod
    def _numeric_id(cls, value: object) -> object:
        return gitlab_project_text(value)


class ReviewConfig(Section):
    """After the ship: the change request watched through review, CI and rework until it is
    merged or closed (the ``review:`` section of WORKFLOW.md; without it a ship ends the issue
    in the done state, as before)."""

    state: NonEmpty
    """Where a shipped issue waits while its change request is reviewed (e.g. ``Human Review``)."""
    merge: MergeMode = MergeMode.MANUAL
    poll_interval_s: int = Field(default=300, ge=30)
    """How often the change request is read while nothing signals a change."""
    max_rounds: int = Field(default=3, ge=1)
    """Rework attempts after the ship; the round past them halts the issue."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Tokens all rework rounds may spend together (None: only the issue's own budgets)."""
    max_time: int | str = "7d"
    """How long a change request may stay in review before the issue halts."""
    required_checks: list[NonEmpty] = Field(default_factory=list[str])
    """Checks that must pass at the shipped head; empty: every check reported there."""
    github: ReviewGitHub | None = None
    """A Linear or Jira line only: the GitHub repository its pull requests live in."""
    gitlab: ReviewGitLab | None = None
    """A Linear or Jira line only: the GitLab project its merge requests live in (exactly one
    of ``github`` and ``gitlab`` there)."""

    @field_validator("max_time")
    @classmethod
    def _a_duration(cls, value: int | str) -> int | str:
        parse_duration(value)
        return value

    def max_time_s(self) -> int:
        return parse_duration(self.max_time)


class WorkflowConfig(Section):
    """The whole front matter. Key names are a contract: add keys, never rename."""

    line: Annotated[str, StringConstraints(pattern=LINE_NAME_PATTERN)]
    tracker: TrackerConfig
    workspace: WorkspaceConfig
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    agent: AgentConfig
    verdicts: dict[Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")], NonEmpty] = (
        Field(min_length=1)
    )
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    concurrency: ConcurrencyConfig = Field(default_factory=ConcurrencyConfig)
    polling: PollingConfig = Field(default_factory=PollingConfig)
    guards: GuardsConfig = Field(default_factory=GuardsConfig)
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    review: ReviewConfig | None = None
    """None: a ship moves the issue to the done state and the workflow ends."""
    pricing: PricingConfig | None = None
    """None: costs are shown in tokens only."""

    # -- derived views used by policy -------------------------------------------------------

    def ship_verdicts(self) -> list[str]:
        return [v for v, state in self.verdicts.items() if state == self.tracker.done_state]

    def pause_verdicts(self) -> list[str]:
        paused = set(self.tracker.paused_states)
        return [v for v, state in self.verdicts.items() if state in paused]

    def shipped_state(self) -> str:
        """Where a ship moves the issue: the review state while a review loop follows, the
        done state otherwise."""
        return self.review.state if self.review is not None else self.tracker.done_state

    def agent_model(self) -> str | None:
        """The model the line's agent runs, as far as WORKFLOW.md says."""
        return agent_model(self.agent, self.pricing)

    def verify_timeout_s(self) -> int:
        return self.hooks.verify_timeout_s or self.hooks.timeout_s

    def max_wall_time_s(self) -> int:
        return parse_duration(self.budgets.max_wall_time)

    def sandbox_network(self) -> bool:
        """Whether sandboxed agents get the network: as configured, else only the agents
        that call a model (not the scripted one)."""
        if self.sandbox.network is not None:
            return self.sandbox.network
        return self.agent.kind is not AgentKind.SCRIPTED


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: int | str) -> int:
    """``90`` / ``"90s"`` / ``"15m"`` / ``"4h"`` / ``"1d"`` -> seconds. Raises ValueError."""
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"duration must be positive, got {value}")
        return value
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (write seconds, or e.g. 90m, 4h, 1d)")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def is_env_ref(value: str) -> bool:
    return bool(ENV_REF_PATTERN.match(value))


def secret_env_names(config: WorkflowConfig) -> list[str]:
    """Environment names holding secrets this line uses; agents never inherit them."""
    names: list[str] = []
    tracker = config.tracker
    match tracker:
        case GitHubTrackerConfig():
            names.append(tracker.api_key[1:])
            names.append("GH_TOKEN")
        case LinearTrackerConfig():
            names.append(tracker.api_key[1:])
        case JiraTrackerConfig():
            names += [tracker.email[1:], tracker.api_token[1:]]
        case GitLabTrackerConfig():
            names.append(tracker.api_key[1:])
        case LocalTrackerConfig():
            pass
    if config.review is not None and config.review.github is not None:
        names.append(config.review.github.api_key[1:])
        names.append("GH_TOKEN")
    if config.review is not None and config.review.gitlab is not None:
        names.append(config.review.gitlab.api_key[1:])
    return sorted(set(names))
