"""Load and validate a ``WORKFLOW.md``: YAML front matter + a strict Liquid prompt body.

Every mistake becomes a :class:`~jidoka.models.Problem` naming its key path, and all problems of
a file are reported together: a user fixes a file in one pass, not one error at a time.

Unlike Symphony (§5.3, "unknown keys SHOULD be ignored"), unknown keys are *rejected* with a
"did you mean" hint: a typo such as ``max_token`` must not silently switch off a guard.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, assert_never, cast, get_args

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from jidoka.config import (
    HALT_VERDICT,
    AgentConfig,
    BackoffConfig,
    BudgetsConfig,
    ConcurrencyConfig,
    GitHubTrackerConfig,
    LinearTrackerConfig,
    LocalTrackerConfig,
    TrackerStates,
    WorkflowConfig,
    WorkspaceConfig,
    is_env_ref,
    parse_duration,
)
from jidoka.models import LoadedWorkflow, Problem
from jidoka.outcomes import AgentKind
from jidoka.prompt import template_problems


class WorkflowFileError(Exception):
    """A WORKFLOW.md that cannot be used. ``problems`` lists everything wrong with it."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p.render()}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s)\n{lines}")


_FRONT_MATTER_FENCE = re.compile(r"^---\s*$")


def split_front_matter(text: str) -> tuple[str | None, str, int]:
    """Return (front matter or None, body, line number where the body starts)."""
    lines = text.splitlines(keepends=True)
    if not lines or not _FRONT_MATTER_FENCE.match(lines[0]):
        return None, text, 1
    for index in range(1, len(lines)):
        if _FRONT_MATTER_FENCE.match(lines[index]):
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    raise WorkflowFileError(
        "<front matter>",
        [
            Problem(
                path="(front matter)",
                message="the front matter opened with '---' is never closed",
                hint="end the YAML block with a line containing only '---'",
            )
        ],
    )


def load_workflow(path: str | os.PathLike[str]) -> LoadedWorkflow:
    """Read, validate and normalise a WORKFLOW.md. Raises :class:`WorkflowFileError`."""
    file_path = Path(path).expanduser()
    try:
        file_path = file_path.resolve(strict=True)
        raw_bytes = file_path.read_bytes()
    except OSError as error:
        raise WorkflowFileError(
            str(path),
            [
                Problem(
                    path="(file)",
                    message=f"missing_workflow_file: cannot read {path}: {error.strerror}",
                    hint="pass the path of your WORKFLOW.md (default: ./WORKFLOW.md)",
                )
            ],
        ) from None
    return parse_workflow(raw_bytes, file_path)


def parse_workflow(raw_bytes: bytes, file_path: Path) -> LoadedWorkflow:
    where = str(file_path)
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WorkflowFileError(
            where, [Problem(path="(file)", message=f"not UTF-8 text ({error.reason})")]
        ) from None
    try:
        front_matter, body, body_line = split_front_matter(text)
    except WorkflowFileError as error:
        raise WorkflowFileError(where, error.problems) from None
    raw = _parse_yaml(where, front_matter)
    problems: list[Problem] = []
    config: WorkflowConfig | None = None
    try:
        config = WorkflowConfig.model_validate(raw)
    except ValidationError as error:
        problems.extend(_structural_problems(error))
    if config is not None:
        problems.extend(semantic_problems(config))
    else:
        problems.extend(section_problems(Sections.salvage(raw)))
    prompt = body.strip()
    problems.extend(template_problems(prompt, first_line=body_line))
    if problems or config is None:
        raise WorkflowFileError(where, problems)
    base_dir = file_path.parent
    config = _resolve_literal_paths(config, base_dir)
    return LoadedWorkflow(
        path=where,
        base_dir=str(base_dir),
        config=config,
        prompt_template=prompt,
        digest=hashlib.sha256(raw_bytes).hexdigest(),
    )


def _parse_yaml(where: str, front_matter: str | None) -> dict[str, Any]:
    if front_matter is None:
        raise WorkflowFileError(
            where,
            [
                Problem(
                    path="(front matter)",
                    message="no YAML front matter: the file must start with '---'",
                    hint="see examples/demo/WORKFLOW.md for a complete file",
                )
            ],
        )
    try:
        raw = yaml.safe_load(front_matter)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 2}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise WorkflowFileError(
            where,
            [Problem(path="(front matter)", message=f"workflow_parse_error{at}: {problem}")],
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise WorkflowFileError(
            where,
            [
                Problem(
                    path="(front matter)",
                    message="workflow_front_matter_not_a_map: the front matter must be a "
                    f"mapping of keys, got {type(raw).__name__}",
                )
            ],
        )
    return cast(dict[str, Any], raw)


# ---------------------------------------------------------------------------------------------
# Structural problems (pydantic) -> key paths with hints
# ---------------------------------------------------------------------------------------------

_TAGGED_UNIONS = {("tracker",)}


def _structural_problems(error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        problems.append(_problem_from_detail(detail))
    return problems


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[str, ...]:
    cleaned: list[str] = []
    for part in loc:
        # pydantic inserts the discriminator value after a tagged union's field name
        if tuple(cleaned) in _TAGGED_UNIONS and part in ("local", "github", "linear"):
            continue
        cleaned.append(str(part))
    return tuple(cleaned)


def _problem_from_detail(detail: ErrorDetails) -> Problem:
    raw_loc = tuple(detail["loc"])
    loc = _clean_loc(raw_loc)
    path = ".".join(loc) or "(front matter)"
    kind = detail["type"]
    if kind == "extra_forbidden":
        key = loc[-1] if loc else ""
        known = _known_keys(raw_loc[:-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else None
        if hint is None and known:
            hint = "known keys here: " + ", ".join(sorted(known))
        return Problem(
            path=path, message="unknown key (rejected so a typo cannot disable a guard)", hint=hint
        )
    if kind == "missing":
        return Problem(path=path, message="required key is missing", hint=_missing_hint(loc))
    if kind == "union_tag_not_found":
        return Problem(
            path=f"{path}.kind",
            message="required key is missing",
            hint="one of: local, github, linear",
        )
    if kind == "union_tag_invalid":
        return Problem(
            path=f"{path}.kind",
            message=f"unknown tracker kind {detail.get('input')!r}",
            hint="one of: local, github, linear",
        )
    if kind == "string_pattern_mismatch" and loc[-1:] == ("api_key",):
        return Problem(
            path=path,
            message="secrets must be environment references, never literal values",
            hint="put the token in an environment variable and write e.g. api_key: $GITHUB_TOKEN",
        )
    return Problem(path=path, message=detail["msg"])


_MISSING_HINTS: dict[tuple[str, ...], str] = {
    ("tracker", "done_state"): "add 'done_state: <state where shipped work goes>' under tracker: "
    "there is deliberately no default (a silent fallback once closed paused issues)",
    ("line",): "name this production line, e.g. 'line: web-app' (used in workflow IDs)",
    ("verdicts",): "declare the verdict alphabet, e.g. verdicts: {DONE: Done}",
    ("agent", "kind"): "one of: command, scripted, codex, claude",
}


def _missing_hint(loc: tuple[str, ...]) -> str | None:
    return _MISSING_HINTS.get(loc)


def _known_keys(raw_loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the model found by walking ``raw_loc`` from the root config."""
    model: type[BaseModel] | None = WorkflowConfig
    for part in raw_loc:
        if model is None:
            return []
        if part in ("local", "github", "linear") and model is WorkflowConfig:
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            tracker_model = {
                "local": LocalTrackerConfig,
                "github": GitHubTrackerConfig,
                "linear": LinearTrackerConfig,
            }.get(str(part))
            model = tracker_model
            continue
        model = _model_of(field.annotation)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------------------------
# Semantic problems: rules spanning several keys
# ---------------------------------------------------------------------------------------------


def _norm(state: str) -> str:
    return state.strip().lower()


@dataclass(frozen=True)
class Sections:
    """The sections of a front matter that validated on their own. Cross-key rules run when
    the sections they read are valid, so one broken section does not hide other problems."""

    tracker: LocalTrackerConfig | GitHubTrackerConfig | LinearTrackerConfig | None = None
    verdicts: dict[str, str] | None = None
    budgets: BudgetsConfig | None = None
    backoff: BackoffConfig | None = None
    agent: AgentConfig | None = None
    concurrency: ConcurrencyConfig | None = None
    workspace: WorkspaceConfig | None = None

    @classmethod
    def of(cls, config: WorkflowConfig) -> Sections:
        return cls(
            tracker=config.tracker,
            verdicts=dict(config.verdicts),
            budgets=config.budgets,
            backoff=config.backoff,
            agent=config.agent,
            concurrency=config.concurrency,
            workspace=config.workspace,
        )

    @classmethod
    def salvage(cls, raw: Mapping[str, Any]) -> Sections:
        """Validate each section of an invalid front matter on its own."""
        found: dict[str, Any] = {}
        for name in (
            "tracker",
            "verdicts",
            "budgets",
            "backoff",
            "agent",
            "concurrency",
            "workspace",
        ):
            field = WorkflowConfig.model_fields[name]
            if field.annotation is None:
                continue
            if name in raw:
                value = raw[name]
            elif field.is_required():
                continue
            else:
                value = field.get_default(call_default_factory=True)
            try:
                found[name] = TypeAdapter(field.annotation).validate_python(value)
            except ValidationError:
                continue
        return cls(**found)


def semantic_problems(config: WorkflowConfig) -> list[Problem]:
    return section_problems(Sections.of(config))


def section_problems(sections: Sections) -> list[Problem]:
    problems: list[Problem] = []
    tracker = sections.tracker
    if sections.verdicts is not None:
        problems.extend(_reserved_verdict_problems(sections.verdicts))
    if tracker is not None:
        problems.extend(_state_problems(tracker))
        if sections.verdicts is not None:
            problems.extend(_verdict_problems(tracker, sections.verdicts))
        if sections.workspace is not None:
            problems.extend(_tracker_kind_problems(tracker, sections.workspace))
        if sections.concurrency is not None:
            for state in sections.concurrency.by_state:
                if _norm(state) not in {_norm(s) for s in tracker.active_states}:
                    problems.append(
                        Problem(
                            path=f"concurrency.by_state.{state}",
                            message=f"'{state}' is not an active state",
                            hint=_suggest(state, tracker.active_states),
                        )
                    )
    if sections.budgets is not None and sections.backoff is not None:
        problems.extend(_budget_problems(sections.budgets, sections.backoff))
    if sections.agent is not None:
        problems.extend(_agent_problems(sections.agent))
    return problems


def _categories(tracker: TrackerStates) -> dict[str, list[str]]:
    return {
        "active_states": list(tracker.active_states),
        "paused_states": list(tracker.paused_states),
        "terminal_states": list(tracker.terminal_states),
        "backlog_states": list(tracker.backlog_states),
    }


def declared_states(tracker: TrackerStates) -> list[str]:
    states: list[str] = []
    for members in _categories(tracker).values():
        states.extend(members)
    if _norm(tracker.done_state) not in {_norm(s) for s in states}:
        states.append(tracker.done_state)
    return states


def _suggest(value: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(value, list(candidates), n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else None


def _state_problems(tracker: TrackerStates) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for category, members in _categories(tracker).items():
        local_seen: set[str] = set()
        for state in members:
            key = _norm(state)
            if key in local_seen:
                problems.append(
                    Problem(path=f"tracker.{category}", message=f"'{state}' is listed twice")
                )
                continue
            local_seen.add(key)
            if key in seen and seen[key] != category:
                problems.append(
                    Problem(
                        path=f"tracker.{category}",
                        message=f"'{state}' is also in tracker.{seen[key]}: "
                        "a state may be in one category only",
                    )
                )
            seen.setdefault(key, category)
    if tracker.working_state is not None and _norm(tracker.working_state) not in {
        _norm(s) for s in tracker.active_states
    }:
        problems.append(
            Problem(
                path="tracker.working_state",
                message=f"'{tracker.working_state}' must also be listed in tracker.active_states",
                hint=_suggest(tracker.working_state, tracker.active_states),
            )
        )
    done_category = seen.get(_norm(tracker.done_state))
    if done_category in ("active_states", "paused_states", "backlog_states"):
        problems.append(
            Problem(
                path="tracker.done_state",
                message=f"'{tracker.done_state}' is in tracker.{done_category}: the done state "
                "must be a terminal or handoff state",
            )
        )
    return problems


def _reserved_verdict_problems(verdicts: Mapping[str, str]) -> list[Problem]:
    if HALT_VERDICT not in verdicts:
        return []
    return [
        Problem(
            path=f"verdicts.{HALT_VERDICT}",
            message="HALT is reserved: it always stops the line and cannot be routed",
            hint="remove this entry; agents write HALT with a halt_reason to pull the cord",
        )
    ]


def _verdict_problems(tracker: TrackerStates, verdicts: Mapping[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    by_state = {_norm(s): cat for cat, members in _categories(tracker).items() for s in members}
    done = _norm(tracker.done_state)
    ship_routes = 0
    for verdict, state in verdicts.items():
        path = f"verdicts.{verdict}"
        if verdict == HALT_VERDICT:
            continue
        key = _norm(state)
        if key == done:
            ship_routes += 1
            continue
        category = by_state.get(key)
        if category == "paused_states":
            continue
        if category == "active_states":
            message = f"routes into active states are rejected ('{state}' would re-dispatch itself)"
            hint = "route to tracker.done_state (ship) or to a paused state"
        elif category == "backlog_states":
            message = f"'{state}' is a backlog state: backlog is operator-only"
            hint = "route to tracker.done_state (ship) or to a paused state"
        elif category == "terminal_states":
            message = (
                f"'{state}' closes the issue without shipping: closing routes must target "
                f"tracker.done_state ('{tracker.done_state}')"
            )
            hint = "closing without shipped evidence is a human decision; route to a paused state"
        else:
            message = f"'{state}' is not a declared state"
            hint = _suggest(state, declared_states(tracker)) or (
                "declare it in tracker.paused_states, or route to tracker.done_state"
            )
        problems.append(Problem(path=path, message=message, hint=hint))
    if ship_routes == 0:
        problems.append(
            Problem(
                path="verdicts",
                message=f"no verdict routes to the done state '{tracker.done_state}': "
                "nothing on this line could ever ship",
                hint=f"add e.g. DONE: {tracker.done_state}",
            )
        )
    return problems


def _budget_problems(budgets: BudgetsConfig, backoff: BackoffConfig) -> list[Problem]:
    problems: list[Problem] = []
    try:
        parse_duration(budgets.max_wall_time)
    except ValueError as error:
        problems.append(Problem(path="budgets.max_wall_time", message=str(error)))
    if budgets.max_tokens_before_first_commit > budgets.max_tokens:
        problems.append(
            Problem(
                path="budgets.max_tokens_before_first_commit",
                message=f"{budgets.max_tokens_before_first_commit} is above budgets.max_tokens "
                f"({budgets.max_tokens}): this guard could never trigger",
            )
        )
    if backoff.base_s > backoff.max_s:
        problems.append(Problem(path="backoff.base_s", message="must not exceed backoff.max_s"))
    return problems


def _agent_problems(agent: AgentConfig) -> list[Problem]:
    problems: list[Problem] = []
    if agent.stall_timeout_s > agent.turn_timeout_s:
        problems.append(
            Problem(
                path="agent.stall_timeout_s",
                message="is longer than agent.turn_timeout_s: the progress clock could never fire",
            )
        )
    match agent.kind:
        case AgentKind.COMMAND:
            if agent.command is None and agent.preset is None:
                problems.append(
                    Problem(
                        path="agent.command",
                        message="required when agent.kind is 'command'",
                        hint="the shell command that runs your agent in the workspace",
                    )
                )
        case AgentKind.SCRIPTED | AgentKind.CODEX | AgentKind.CLAUDE:
            if agent.preset is not None:
                problems.append(
                    Problem(path="agent.preset", message="presets apply to agent.kind: command")
                )
            if agent.usage is not None:
                problems.append(
                    Problem(
                        path="agent.usage", message="usage field paths apply to agent.kind: command"
                    )
                )
        case _:
            assert_never(agent.kind)
    if agent.scenario is not None and agent.kind is not AgentKind.SCRIPTED:
        problems.append(
            Problem(path="agent.scenario", message="only scripted agents play scenarios")
        )
    return problems


def _tracker_kind_problems(
    tracker: LocalTrackerConfig | GitHubTrackerConfig | LinearTrackerConfig,
    workspace: WorkspaceConfig,
) -> list[Problem]:
    problems: list[Problem] = []
    match tracker:
        case GitHubTrackerConfig():
            declared = {_norm(s) for s in declared_states(tracker)}
            for state in tracker.state_labels:
                if _norm(state) not in declared:
                    problems.append(
                        Problem(
                            path=f"tracker.state_labels.{state}",
                            message=f"'{state}' is not a declared state",
                            hint=_suggest(state, declared_states(tracker)),
                        )
                    )
            closing = {_norm(s) for s in tracker.terminal_states} | {_norm(tracker.done_state)}
            for state in tracker.closed_states:
                if _norm(state) not in closing:
                    problems.append(
                        Problem(
                            path=f"tracker.closed_states.{state}",
                            message="closed issues can only be in terminal states "
                            "or the done state",
                        )
                    )
            if not workspace.push_on_ship:
                problems.append(
                    Problem(
                        path="workspace.push_on_ship",
                        message="GitHub lines ship by opening a pull request: "
                        "the branch must be pushed",
                    )
                )
            problems.extend(_github_mapping_problems(tracker))
        case LinearTrackerConfig() | LocalTrackerConfig():
            pass
        case _:
            assert_never(tracker)
    return problems


def _github_mapping_problems(tracker: GitHubTrackerConfig) -> list[Problem]:
    """A GitHub issue must read as exactly one state, and every declared state must be
    writable: otherwise the adapter would have to guess (see activities/tracker/PROFILES.md)."""
    problems: list[Problem] = []
    labelled = {_norm(s) for s in tracker.state_labels}
    closed = {_norm(s) for s in tracker.closed_states}
    label_owner: dict[str, str] = {}
    for state, label in tracker.state_labels.items():
        path = f"tracker.state_labels.{state}"
        if "," in label:
            problems.append(
                Problem(path=path, message=f"'{label}': a state label cannot contain a comma")
            )
        owner = label_owner.setdefault(label.strip().lower(), state)
        if owner != state:
            problems.append(
                Problem(path=path, message=f"label '{label}' is already the label of '{owner}'")
            )
        if _norm(state) in closed:
            problems.append(
                Problem(
                    path=path,
                    message=f"'{state}' is also in tracker.closed_states: "
                    "a state is either open with a label or closed with a reason",
                )
            )
    reason_owner: dict[str, str] = {}
    for state, reason in tracker.closed_states.items():
        owner = reason_owner.setdefault(reason, state)
        if owner != state:
            problems.append(
                Problem(
                    path=f"tracker.closed_states.{state}",
                    message=f"reason '{reason}' already means '{owner}': "
                    "a closed issue would read as either",
                )
            )
    default = tracker.default_open_state
    if default is not None:
        declared = declared_states(tracker)
        if _norm(default) not in {_norm(s) for s in declared}:
            problems.append(
                Problem(
                    path="tracker.default_open_state",
                    message=f"'{default}' is not a declared state",
                    hint=_suggest(default, declared),
                )
            )
        elif _norm(default) in closed:
            problems.append(
                Problem(
                    path="tracker.default_open_state",
                    message=f"'{default}' is a closed state: open issues cannot be in it",
                )
            )
    representable = labelled | closed
    if default is not None:
        representable.add(_norm(default))
    for category, members in _categories(tracker).items():
        for state in members:
            if _norm(state) not in representable:
                problems.append(_unrepresentable(f"tracker.{category}", state))
    if _norm(tracker.done_state) not in representable and _norm(tracker.done_state) not in {
        _norm(s) for members in _categories(tracker).values() for s in members
    }:
        problems.append(_unrepresentable("tracker.done_state", tracker.done_state))
    return problems


def _unrepresentable(path: str, state: str) -> Problem:
    return Problem(
        path=path,
        message=f"'{state}' has no GitHub representation: no issue could be in it",
        hint="map it in tracker.state_labels (open issues), tracker.closed_states "
        "(closed issues) or name it tracker.default_open_state",
    )


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^[^/\s]+@[^/\s]+:")


def is_url(value: str) -> bool:
    return bool(_URL.match(value))


def resolve_path(value: str, base_dir: str | os.PathLike[str], environ: Mapping[str, str]) -> str:
    """Resolve a path setting: ``$VAR`` (whole value or leading segment), ``~``, relative to
    the WORKFLOW.md folder. Used at load time for literals and in activities for references."""
    expanded = _expand_env(value, environ)
    expanded = os.path.expanduser(expanded)
    path = Path(expanded)
    if not path.is_absolute():
        path = Path(base_dir) / path
    return os.path.normpath(str(path))


def _expand_env(value: str, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in environ or environ[name] == "":
            raise KeyError(name)
        return environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", replace, value)


def _resolve_literal_paths(config: WorkflowConfig, base_dir: Path) -> WorkflowConfig:
    """Make literal relative/``~`` paths absolute; leave ``$VAR`` references for activities."""
    no_env: dict[str, str] = {}
    workspace = config.workspace
    updates: dict[str, Any] = {}
    if "$" not in workspace.root:
        updates["root"] = resolve_path(workspace.root, base_dir, no_env)
    if "$" not in workspace.repo and not is_url(workspace.repo):
        updates["repo"] = resolve_path(workspace.repo, base_dir, no_env)
    config = config.model_copy(update={"workspace": workspace.model_copy(update=updates)})
    tracker = config.tracker
    if isinstance(tracker, LocalTrackerConfig) and "$" not in tracker.board:
        config = config.model_copy(
            update={
                "tracker": tracker.model_copy(
                    update={"board": resolve_path(tracker.board, base_dir, no_env)}
                )
            }
        )
    return config


def env_reference_names(config: WorkflowConfig) -> list[str]:
    """Every ``$VAR`` a config refers to (used by ``jidoka check`` to report unset ones)."""
    names: set[str] = set()
    pattern = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
    values: list[str] = [config.workspace.root, config.workspace.repo]
    tracker = config.tracker
    match tracker:
        case LocalTrackerConfig():
            values.append(tracker.board)
        case GitHubTrackerConfig() | LinearTrackerConfig():
            values.append(tracker.api_key)
    for value in values:
        names.update(pattern.findall(value))
    for value in config.agent.env.values():
        if is_env_ref(value):
            names.add(value[1:])
    return sorted(names)
