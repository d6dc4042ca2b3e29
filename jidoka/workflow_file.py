"""Load and validate a ``WORKFLOW.md``: YAML front matter + a strict Liquid prompt body.

Every mistake becomes a :class:`~jidoka.models.Problem` naming its key path, and all problems of
a file are reported together: a user fixes a file in one pass, not one error at a time.

Unknown keys are *rejected* with a "did you mean" hint: a typo such as ``max_token`` must not
silently switch off a guard.

Loading is total and bounded: for any bytes, :func:`parse_workflow` returns a
:class:`LoadedWorkflow` or raises :class:`WorkflowFileError`, quickly. The file size, the YAML
(nesting, aliases, numbers, keys) and the prompt template (see :mod:`jidoka.prompt`) are all
bounded, and every failure is a problem naming where it is.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, assert_never, cast, get_args
from urllib.parse import urlsplit

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
    GitLabTrackerConfig,
    JiraTrackerConfig,
    LinearTrackerConfig,
    LocalTrackerConfig,
    PricingConfig,
    ReviewConfig,
    TrackerConfig,
    TrackerStates,
    WorkflowConfig,
    WorkspaceConfig,
    agent_model,
    is_env_ref,
    label_scope,
    parse_duration,
)
from jidoka.cost import prices_for
from jidoka.models import LoadedWorkflow, Problem
from jidoka.outcomes import AgentKind, TrackerKind
from jidoka.prompt import template_problems
from jidoka.review import review_state_problem


class WorkflowFileError(Exception):
    """A WORKFLOW.md that cannot be used. ``problems`` lists everything wrong with it."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = _bounded_problems(problems)
        lines = "\n".join(f"  - {p.render()}" for p in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s)\n{lines}")


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
    try:
        file_path = Path(path).expanduser().resolve(strict=True)
        # a pipe or a device could block or never end: only regular files are read
        regular = stat.S_ISREG(file_path.stat().st_mode)
        raw_bytes = _read_at_most(file_path, MAX_WORKFLOW_BYTES + 1) if regular else None
    # RuntimeError: a symlink loop or an unknown home folder; ValueError: a NUL in the path
    except (OSError, RuntimeError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise WorkflowFileError(
            str(path),
            [
                Problem(
                    path="(file)",
                    message=f"missing_workflow_file: cannot read {path}: {reason}",
                    hint="pass the path of your WORKFLOW.md (default: ./WORKFLOW.md)",
                )
            ],
        ) from None
    if raw_bytes is None:
        raise WorkflowFileError(
            str(path),
            [
                Problem(
                    path="(file)",
                    message=f"missing_workflow_file: {path} is not a regular file",
                    hint="pass the path of your WORKFLOW.md (default: ./WORKFLOW.md)",
                )
            ],
        )
    return parse_workflow(raw_bytes, file_path)


def _read_at_most(file_path: Path, size: int) -> bytes:
    with file_path.open("rb") as handle:
        return handle.read(size)


def parse_workflow(raw_bytes: bytes, file_path: Path) -> LoadedWorkflow:
    """Validate and normalise the bytes of a WORKFLOW.md read from ``file_path``.

    Total: for any bytes it returns or raises :class:`WorkflowFileError`, within seconds."""
    where = str(file_path)
    try:
        return _parse_workflow(raw_bytes, file_path)
    except WorkflowFileError as error:
        raise WorkflowFileError(where, error.problems) from None
    except Exception as error:
        # Every failure this module knows of is a problem already; an unknown one must still
        # reach the user as a problem, not as a traceback or a retried activity.
        raise WorkflowFileError(
            where,
            [
                Problem(
                    path="(file)",
                    message=f"internal_error: checking this file failed "
                    f"({type(error).__name__}: {error})",
                    hint="this is a bug in jidoka: please report it with the file",
                )
            ],
        ) from None


def _parse_workflow(raw_bytes: bytes, file_path: Path) -> LoadedWorkflow:
    where = str(file_path)
    if len(raw_bytes) > MAX_WORKFLOW_BYTES:
        raise WorkflowFileError(
            where,
            [
                Problem(
                    path="(file)",
                    message=f"workflow_too_large: the file is over {MAX_WORKFLOW_BYTES:,} bytes "
                    f"({MAX_WORKFLOW_BYTES // 1024} KiB)",
                    hint="the loaded workflow travels with every attempt: keep long "
                    "instructions in the repository and point the prompt at them",
                )
            ],
        )
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WorkflowFileError(
            where, [Problem(path="(file)", message=f"not UTF-8 text ({error.reason})")]
        ) from None
    # editors on Windows may start the file with a byte order mark
    text = text.removeprefix("\ufeff")
    front_matter, body, body_line = split_front_matter(text)
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
    raw = _load_front_matter(front_matter)
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
# Bounds: any bytes give a LoadedWorkflow or typed problems, quickly
# ---------------------------------------------------------------------------------------------

MAX_WORKFLOW_BYTES = 256 * 1024
"""The loaded workflow (config and prompt) travels in Temporal payloads, limited to 2 MiB."""
MAX_YAML_DEPTH = 50
"""Nesting levels. PyYAML composes recursively: far below Python's recursion limit."""
MAX_YAML_NODES = 10_000
"""Values once every alias is expanded. A complete front matter has a few hundred."""
MAX_YAML_ALIASES = 1_000
"""Alias uses (``*name``). A front matter needs a handful; thousands mean a generated file."""
MAX_YAML_TEXT_CHARS = MAX_WORKFLOW_BYTES
"""Characters of all scalars once every alias is expanded: aliases may repeat text, never
grow the config past what the file itself could hold."""
MAX_NUMBER_CHARS = 100
"""No setting needs a longer number; Python refuses int strings over 4,300 digits."""
MAX_PROBLEMS = 100
"""Problems carried by one error: they travel in an activity failure, and nobody reads more."""
_PATH_CHARS = 200
_MESSAGE_CHARS = 1_000
_HINT_CHARS = 500
_SHOWN_SEGMENTS = 8

_UNUSABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
"""Only YAML escapes can produce these: a surrogate cannot be encoded as UTF-8 (payloads are
JSON), and a NUL cannot be part of a path, a command or an environment variable."""
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


def _clip(text: str, limit: int) -> str:
    """At most about ``limit`` characters, escaped to one printable line: a problem never
    echoes megabytes of its input, nor control characters to a terminal."""
    if len(text) > limit:
        text = f"{text[: limit - 30]}... ({len(text) - limit + 30:,} more characters)"
    return _UNPRINTABLE.sub(lambda found: repr(found.group())[1:-1], text)


def _bounded_problems(problems: list[Problem]) -> list[Problem]:
    clipped = [
        Problem(
            path=_clip(p.path, _PATH_CHARS),
            message=_clip(p.message, _MESSAGE_CHARS),
            hint=_clip(p.hint, _HINT_CHARS) if p.hint is not None else None,
        )
        for p in problems
    ]
    if len(clipped) <= MAX_PROBLEMS:
        return clipped
    hidden = len(clipped) - (MAX_PROBLEMS - 1)
    return [
        *clipped[: MAX_PROBLEMS - 1],
        Problem(
            path="(file)",
            message=f"{hidden:,} more problems not shown",
            hint="fix the problems above and check again",
        ),
    ]


def _key_path(segments: list[str]) -> str:
    shown = segments if len(segments) <= _SHOWN_SEGMENTS else [*segments[:_SHOWN_SEGMENTS], "..."]
    return ".".join(shown) or "(front matter)"


class _FrontMatterError(yaml.MarkedYAMLError):
    """A front matter this loader refuses, with the key path where it found the problem."""

    def __init__(self, problem: str, mark: yaml.Mark | None, key_path: str | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.key_path = key_path


def _children(node: yaml.Node) -> list[tuple[str | None, yaml.Node]]:
    """(path segment, child) pairs; mapping keys come with ``None``: they share the mapping's
    path."""
    if isinstance(node, yaml.SequenceNode):
        items = cast(list[yaml.Node], node.value)
        return [(str(index), item) for index, item in enumerate(items)]
    if isinstance(node, yaml.MappingNode):
        pairs = cast(list[tuple[yaml.Node, yaml.Node]], node.value)
        found: list[tuple[str | None, yaml.Node]] = []
        for key, value in pairs:
            found.append((None, key))
            found.append((_key_text(key), value))
        return found
    return []


def _key_text(key: yaml.Node) -> str:
    return cast(str, key.value) if isinstance(key, yaml.ScalarNode) else "?"


def _scalar_chars(node: yaml.Node) -> int:
    return len(cast(str, node.value)) if isinstance(node, yaml.ScalarNode) else 0


class _FrontMatterLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with bounds, so that any text loads quickly or fails as YAML.

    * Nesting is bounded while composing, before Python's recursion limit could be reached.
    * Aliases are bounded by count and by the size of the document they expand to, measured
      on the node graph (each shared node once) without expanding it: an alias bomb is refused
      before anything walks it as a tree (pydantic, error messages, payloads).
    * Keys must be plain scalars and appear once per mapping: YAML would keep only the last of
      two equal keys, and a silently dropped setting is what ``jidoka check`` exists to catch.
    * Date-like scalars stay text: no setting is a date, and a value such as ``2024-13-45`` is
      a branch or state name, not an invalid date.
    * Numbers are bounded in length, and a value a constructor cannot read (``!!int x``,
      ``!!timestamp 2024-13-45``) is a YAML error at its line, not a Python exception.
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in cast(
            dict[str, list[tuple[str, re.Pattern[str]]]], yaml.SafeLoader.yaml_implicit_resolvers
        ).items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.failed_at: str | None = None
        """Key path of the node being read when loading failed."""
        self._depth = 0
        self._composed = 0
        self._aliases = 0
        self._segments: list[str] = []
        self._expanded_nodes = 0
        self._expanded_chars = 0
        self._measured: dict[int, tuple[int, int, int]] = {}
        self._measuring: set[int] = set()
        self._paths: dict[int, str] = {}
        self._paths_by_position: dict[tuple[int, int], str] = {}

    # -- composing ---------------------------------------------------------------------------

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        segment = _segment(index)
        if segment is not None:
            self._segments.append(segment)
        try:
            return self._compose_bounded_node(parent, index)
        except yaml.YAMLError:
            if self.failed_at is None:
                self.failed_at = _key_path(self._segments)
            raise
        finally:
            if segment is not None:
                self._segments.pop()

    def _compose_bounded_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        peeked = self.peek_event()  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        event = cast(yaml.events.Event, peeked)
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise self._refuse(
                    f"more than {MAX_YAML_ALIASES:,} aliases (*name)", event.start_mark
                )
            return super().compose_node(parent, index)
        self._composed += 1
        if self._composed > MAX_YAML_NODES:
            raise self._refuse(f"more than {MAX_YAML_NODES:,} values", event.start_mark)
        if self._depth >= MAX_YAML_DEPTH:
            raise self._refuse(f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.MappingNode):
            self._check_keys(node)
        return node

    def _check_keys(self, node: yaml.MappingNode) -> None:
        first_marks: dict[str, yaml.Mark] = {}
        for key, _value in cast(list[tuple[yaml.Node, yaml.Node]], node.value):
            if not isinstance(key, yaml.ScalarNode):
                raise self._refuse(
                    "a key must be plain text, not a list or a mapping", key.start_mark
                )
            if key.tag == _MERGE_TAG:
                continue
            text = _key_text(key)
            first = first_marks.get(text)
            if first is not None:
                raise _FrontMatterError(
                    f"duplicate key '{text}' (first at line {first.line + 2}): YAML would "
                    "silently keep only the last one",
                    key.start_mark,
                    _key_path([*self._segments, text]),
                )
            first_marks[text] = key.start_mark

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            self._measure(node, 1, [])
        return node

    def path_at(self, mark: yaml.Mark | None) -> str | None:
        """Key path of the value starting at ``mark``, once the document has been measured."""
        if mark is None:
            return None
        return self._paths_by_position.get((mark.line, mark.column))

    def _refuse(self, problem: str, mark: yaml.Mark | None) -> _FrontMatterError:
        return _FrontMatterError(problem, mark, _key_path(self._segments))

    # -- measuring the expanded document -----------------------------------------------------

    def _measure(self, node: yaml.Node, depth: int, segments: list[str]) -> tuple[int, int, int]:
        """(values, characters, height) of ``node`` once expanded, each shared node measured
        once. Adds to the document's totals and raises at the first bound crossed."""
        key = id(node)
        known = self._measured.get(key)
        if known is not None:
            if depth - 1 + known[2] > MAX_YAML_DEPTH:
                raise self._too_deep(node, segments)
            self._count(known[0], known[1], node, segments)
            return known
        if key in self._measuring:
            raise _FrontMatterError(
                "an alias refers to a value that contains it", node.start_mark, _key_path(segments)
            )
        if depth > MAX_YAML_DEPTH:
            raise self._too_deep(node, segments)
        path = _key_path(segments)
        self._paths.setdefault(key, path)
        mark = node.start_mark
        if isinstance(mark, yaml.Mark):
            self._paths_by_position.setdefault((mark.line, mark.column), path)
        if isinstance(node, yaml.ScalarNode) and _UNUSABLE_CHARACTER.search(cast(str, node.value)):
            raise _FrontMatterError(
                "contains a NUL or an unpaired surrogate (escapes such as \\0 or \\ud800): no "
                "setting can hold one, and the workflow could not be sent to workers",
                node.start_mark,
                _key_path(segments),
            )
        values, chars, height = 1, _scalar_chars(node), 1
        self._count(values, chars, node, segments)
        self._measuring.add(key)
        for segment, child in _children(node):
            child_segments = segments if segment is None else [*segments, segment]
            child_values, child_chars, child_height = self._measure(
                child, depth + 1, child_segments
            )
            values += child_values
            chars += child_chars
            height = max(height, child_height + 1)
        self._measuring.discard(key)
        self._measured[key] = (values, chars, height)
        return values, chars, height

    def _count(self, values: int, chars: int, node: yaml.Node, segments: list[str]) -> None:
        self._expanded_nodes += values
        self._expanded_chars += chars
        if self._expanded_nodes > MAX_YAML_NODES:
            raise _FrontMatterError(
                f"aliases expand the front matter past {MAX_YAML_NODES:,} values",
                node.start_mark,
                _key_path(segments),
            )
        if self._expanded_chars > MAX_YAML_TEXT_CHARS:
            raise _FrontMatterError(
                f"aliases expand the front matter past {MAX_YAML_TEXT_CHARS:,} characters",
                node.start_mark,
                _key_path(segments),
            )

    def _too_deep(self, node: yaml.Node, segments: list[str]) -> _FrontMatterError:
        return _FrontMatterError(
            f"aliases nest values deeper than {MAX_YAML_DEPTH} levels",
            node.start_mark,
            _key_path(segments),
        )

    # -- constructing ------------------------------------------------------------------------

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        try:
            return super().construct_object(node, deep=deep)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        except yaml.YAMLError:
            if self.failed_at is None:
                self.failed_at = self._paths.get(id(node))
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:
            kind = str(node.tag).rsplit(":", 1)[-1]
            value = _clip(repr(node.value), 60) if isinstance(node, yaml.ScalarNode) else "this"
            raise _FrontMatterError(
                f"cannot read {value} as {kind}: {error}",
                node.start_mark,
                self._paths.get(id(node)),
            ) from None

    def construct_bounded_number(self, node: yaml.ScalarNode) -> object:
        text = cast(str, node.value)
        if len(text) > MAX_NUMBER_CHARS:
            raise _FrontMatterError(
                f"a number of {len(text):,} characters (at most {MAX_NUMBER_CHARS})",
                node.start_mark,
                self._paths.get(id(node)),
            )
        if node.tag == "tag:yaml.org,2002:int":
            return super().construct_yaml_int(node)
        return super().construct_yaml_float(node)


def _segment(index: object) -> str | None:
    """The path segment of a node composed at ``index`` (a position, a key node, or None for
    a key or the root)."""
    if isinstance(index, int):
        return str(index)
    if isinstance(index, yaml.Node):
        return _key_text(index)
    return None


_FrontMatterLoader.add_constructor(
    "tag:yaml.org,2002:int", _FrontMatterLoader.construct_bounded_number
)
_FrontMatterLoader.add_constructor(
    "tag:yaml.org,2002:float", _FrontMatterLoader.construct_bounded_number
)


def _load_front_matter(text: str) -> object:
    """Parse with :class:`_FrontMatterLoader`. Raises :class:`WorkflowFileError` only."""
    loader: _FrontMatterLoader | None = None
    try:
        loader = _FrontMatterLoader(text)
        return cast(object, loader.get_single_data())
    except yaml.YAMLError as error:
        failed_at = None
        if loader is not None:
            failed_at = loader.failed_at
            if failed_at is None and isinstance(error, yaml.MarkedYAMLError):
                failed_at = loader.path_at(error.problem_mark) or loader.path_at(error.context_mark)
        raise WorkflowFileError("<front matter>", [_yaml_problem(error, text, failed_at)]) from None
    finally:
        if loader is not None:
            loader.dispose()  # pyright: ignore[reportUnknownMemberType]


def _yaml_problem(error: yaml.YAMLError, text: str, failed_at: str | None) -> Problem:
    path = failed_at or "(front matter)"
    if isinstance(error, _FrontMatterError) and error.key_path is not None:
        path = error.key_path
    at = ""
    detail = str(error)
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        if mark is not None:
            at = f" (line {mark.line + 2}, column {mark.column + 1})"
        parts = [part for part in (error.context, error.problem) if part]
        detail = ": ".join(parts) or detail
    elif isinstance(error, yaml.reader.ReaderError):
        position = min(max(int(error.position), 0), len(text))
        line = text.count("\n", 0, position)
        column = position - (text.rfind("\n", 0, position) + 1)
        at = f" (line {line + 2}, column {column + 1})"
        character = error.character
        shown = f"U+{character:04X}" if isinstance(character, int) else repr(character)
        detail = f"character {shown} is not allowed in YAML"
    return Problem(path=path, message=f"workflow_parse_error{at}: {detail}")


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
        if tuple(cleaned) in _TAGGED_UNIONS and part in TRACKER_KINDS:
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
            hint="one of: " + ", ".join(TRACKER_KINDS),
        )
    if kind == "union_tag_invalid":
        tag = detail.get("ctx", {}).get("tag", "")
        return Problem(
            path=f"{path}.kind",
            message=f"unknown tracker kind {_clip(str(tag), 80)!r}",
            hint="one of: " + ", ".join(TRACKER_KINDS),
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
        if part in TRACKER_KINDS and model is WorkflowConfig:
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


TRACKER_KINDS = tuple(kind.value for kind in TrackerKind)


def _norm(state: str) -> str:
    return state.strip().lower()


@dataclass(frozen=True)
class Sections:
    """The sections of a front matter that validated on their own. Cross-key rules run when
    the sections they read are valid, so one broken section does not hide other problems."""

    tracker: TrackerConfig | None = None
    verdicts: dict[str, str] | None = None
    budgets: BudgetsConfig | None = None
    backoff: BackoffConfig | None = None
    agent: AgentConfig | None = None
    concurrency: ConcurrencyConfig | None = None
    workspace: WorkspaceConfig | None = None
    review: ReviewConfig | None = None
    pricing: PricingConfig | None = None

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
            review=config.review,
            pricing=config.pricing,
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
            "review",
            "pricing",
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
            problems.extend(_tracker_kind_problems(tracker, sections.workspace, sections.review))
        if sections.review is not None:
            problems.extend(_review_problems(tracker, sections.review))
        if sections.concurrency is not None:
            active = {_norm(s) for s in tracker.active_states}
            for state in sections.concurrency.by_state:
                if _norm(state) not in active:
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
        problems.extend(_literal_secret_env_problems(sections.agent))
    if sections.workspace is not None:
        problems.extend(_repo_credential_problems(sections.workspace))
    if sections.agent is not None and sections.budgets is not None:
        problems.extend(_pricing_problems(sections.pricing, sections.budgets, sections.agent))
    return problems


def _pricing_problems(
    pricing: PricingConfig | None, budgets: BudgetsConfig, agent: AgentConfig
) -> list[Problem]:
    """``pricing.model`` names a priced model, and a money budget has a price to count with."""
    problems: list[Problem] = []
    if pricing is not None and pricing.model is not None and not prices_for(pricing, pricing.model):
        problems.append(
            Problem(
                path="pricing.model",
                message=f"'{pricing.model}' has no price in pricing.models",
                hint=_suggest(pricing.model, list(pricing.models)),
            )
        )
    if budgets.max_cost is not None:
        model = agent_model(agent, pricing)
        if model is None or prices_for(pricing, model) is None:
            named = f"the agent's model '{model}'" if model else "the agent's model (not named)"
            problems.append(
                Problem(
                    path="budgets.max_cost",
                    message=f"a money budget needs a price for {named}",
                    hint="add the model to pricing.models, and name it in pricing.model or in "
                    "the agent's own settings (agent.codex.model, agent.claude.model)",
                )
            )
    return problems


SECRET_LOOKING_NAME = re.compile(
    r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|PRIVATE)", re.IGNORECASE
)
"""Names under which a literal value is almost surely a secret (``OPENAI_API_KEY``)."""


def _literal_secret_env_problems(agent: AgentConfig) -> list[Problem]:
    """A secret written into WORKFLOW.md would travel in every payload, history and log that
    carries the config; a ``$VAR`` reference is resolved on the worker and withheld. The value
    itself is never repeated in the problem."""
    return [
        Problem(
            path=f"agent.env.{name}",
            message="looks like a secret written in the file; WORKFLOW.md only refers to "
            "secrets, it never holds them",
            hint=f"set it in the worker's environment and write {name}: ${name}",
        )
        for name, value in agent.env.items()
        if SECRET_LOOKING_NAME.search(name) and value and not is_env_ref(value)
    ]


def _repo_credential_problems(workspace: WorkspaceConfig) -> list[Problem]:
    """``https://user:token@host/...`` (or a token as the user name): the credential would be
    stored in payloads, histories and every clone's config. An SSH user name is no secret."""
    try:
        parts = urlsplit(workspace.repo)
    except ValueError:
        return []
    if parts.scheme in ("ssh", "git+ssh"):
        credential = parts.password is not None
    else:
        credential = parts.scheme != "" and "@" in parts.netloc
    if not credential:
        return []
    return [
        Problem(
            path="workspace.repo",
            message="the repository URL carries a credential (before '@'); WORKFLOW.md only "
            "refers to secrets, it never holds them",
            hint="write the URL without it (https://host/owner/repo.git): with a GitHub tracker "
            "the push offers its token (tracker.api_key, e.g. $GITHUB_TOKEN), otherwise the "
            "worker's own git credentials apply",
        )
    ]


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


_SUGGESTION_CANDIDATES = 50
"""Beyond this many names a "did you mean" is noise, and comparing every wrong name with every
candidate would make a huge file slow to check."""


def _suggest(value: str, candidates: Iterable[str]) -> str | None:
    names = list(candidates)
    if len(names) > _SUGGESTION_CANDIDATES:
        return None
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.5)
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
    declared = declared_states(tracker)
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
            hint = _suggest(state, declared) or (
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


def _review_problems(tracker: TrackerStates, review: ReviewConfig) -> list[Problem]:
    problem = review_state_problem(review, tracker)
    if problem is not None:
        return [Problem(path="review.state", message=problem)]
    without_pull_requests = isinstance(tracker, LinearTrackerConfig | JiraTrackerConfig)
    if without_pull_requests:
        if review.github is None and review.gitlab is None:
            return [
                Problem(
                    path="review",
                    message=f"{tracker.kind.value} has no pull requests: name where the work is "
                    "reviewed, review.github (a GitHub repository) or review.gitlab (a GitLab "
                    "project)",
                    hint="review.github.repo: owner/name (token: review.github.api_key, "
                    "$GITHUB_TOKEN by default), or review.gitlab.project: group/app (token: "
                    "review.gitlab.api_key, $GITLAB_TOKEN by default)",
                )
            ]
        if review.github is not None and review.gitlab is not None:
            return [
                Problem(
                    path="review",
                    message="review.github and review.gitlab are both set: the work is reviewed "
                    "in one place, name one of them",
                )
            ]
    else:
        refused = [
            Problem(
                path=f"review.{forge}",
                message=f"only a Linear or Jira line names a {name} for review: a GitHub line "
                "reviews in its own repository, a GitLab line in its own project, and the "
                "local board is its own forge",
            )
            for forge, name, value in (
                ("github", "GitHub repository", review.github),
                ("gitlab", "GitLab project", review.gitlab),
            )
            if value is not None
        ]
        if refused:
            return refused
    labelled = isinstance(tracker, GitHubTrackerConfig | GitLabTrackerConfig)
    if labelled and _norm(review.state) not in {_norm(state) for state in tracker.state_labels}:
        forge = "GitHub" if isinstance(tracker, GitHubTrackerConfig) else "GitLab"
        label = (
            "jidoka:in-review" if isinstance(tracker, GitHubTrackerConfig) else "jidoka::in-review"
        )
        return [
            Problem(
                path="review.state",
                message=f"'{review.state}' has no label in tracker.state_labels: on {forge} an "
                "open issue's state is its label",
                hint=f"add tracker.state_labels.{review.state}: {label}",
            )
        ]
    return []


def _tracker_kind_problems(
    tracker: TrackerConfig,
    workspace: WorkspaceConfig,
    review: ReviewConfig | None = None,
) -> list[Problem]:
    problems: list[Problem] = []
    match tracker:
        case GitHubTrackerConfig():
            declared_names = declared_states(tracker) + ([review.state] if review else [])
            declared = {_norm(s) for s in declared_names}
            for state in tracker.state_labels:
                if _norm(state) not in declared:
                    problems.append(
                        Problem(
                            path=f"tracker.state_labels.{state}",
                            message=f"'{state}' is not a declared state",
                            hint=_suggest(state, declared_names),
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
        case GitLabTrackerConfig():
            if not workspace.push_on_ship:
                problems.append(
                    Problem(
                        path="workspace.push_on_ship",
                        message="GitLab lines ship by opening a merge request: "
                        "the branch must be pushed",
                    )
                )
            problems.extend(
                gitlab_mapping_problems(tracker, review_state=review.state if review else None)
            )
        case LinearTrackerConfig() | JiraTrackerConfig():
            reviewed_in = review is not None and (review.github or review.gitlab) is not None
            if reviewed_in and not workspace.push_on_ship:
                problems.append(
                    Problem(
                        path="workspace.push_on_ship",
                        message=f"a {tracker.kind.value} line with review.github or "
                        "review.gitlab ships by opening a change request there: the branch "
                        "must be pushed",
                    )
                )
        case LocalTrackerConfig():
            pass
        case _:
            assert_never(tracker)
    return problems


def gitlab_mapping_problems(
    config: GitLabTrackerConfig, *, review_state: str | None = None
) -> list[Problem]:
    """The cross-key rules of the GitLab profile (``jidoka check`` runs them once the kind is
    wired): an issue must read as exactly one state, every declared state must be writable,
    and adding a state label must never make GitLab drop a label the line reads.
    ``review_state``: ``review.state``, a declared state of a line with ``review:`` (its label
    is required by the review rules)."""

    def norm(state: str) -> str:
        return state.strip().casefold()

    declared: dict[str, str] = {}
    for state in [
        *config.active_states,
        *config.paused_states,
        *config.terminal_states,
        *config.backlog_states,
        config.done_state,
    ]:
        declared.setdefault(norm(state), state)
    # review.state may have a label too; that it has one is the review rules' to say.
    labellable = {*declared, *([norm(review_state)] if review_state is not None else [])}
    problems: list[Problem] = []
    closed = [norm(s) for s in config.closed_states]
    closing = {norm(s) for s in config.terminal_states} | {norm(config.done_state)}
    for state in config.closed_states:
        if norm(state) not in closing:
            problems.append(
                Problem(
                    path="tracker.closed_states",
                    message=f"'{state}': closed issues can only be in terminal states or the "
                    "done state",
                )
            )
    label_owner: dict[str, str] = {}
    for state, label in config.state_labels.items():
        path = f"tracker.state_labels.{state}"
        if norm(state) not in labellable:
            problems.append(Problem(path=path, message=f"'{state}' is not a declared state"))
        if "," in label:
            problems.append(
                Problem(path=path, message=f"'{label}': a state label cannot contain a comma")
            )
        if label.strip().lower() in ("none", "any"):
            problems.append(
                Problem(
                    path=path,
                    message=f"'{label}': GitLab's label filter reads None and Any as 'no "
                    "label' and 'any label', not as a label's name",
                )
            )
        owner = label_owner.setdefault(label.strip().lower(), state)
        if owner != state:
            problems.append(
                Problem(path=path, message=f"label '{label}' is already the label of '{owner}'")
            )
    labelled = {norm(s) for s in config.state_labels}
    for state in config.closed_states[1:]:
        if norm(state) not in labelled:
            problems.append(
                Problem(
                    path="tracker.closed_states",
                    message=f"'{state}' has no label in tracker.state_labels: a closed issue "
                    f"without a closed-state label reads as '{config.closed_states[0]}', so "
                    "only the first closed state can go without one",
                )
            )
    default = config.default_open_state
    if default is not None and norm(default) not in declared:
        problems.append(
            Problem(path="tracker.default_open_state", message=f"'{default}' is not declared")
        )
    elif default is not None and norm(default) in closed:
        problems.append(
            Problem(
                path="tracker.default_open_state",
                message=f"'{default}' is a closed state: open issues cannot be in it",
            )
        )
    representable = labelled | set(closed) | ({norm(default)} if default else set[str]())
    for key, state in declared.items():
        if key not in representable:
            problems.append(
                Problem(
                    path="tracker.state_labels",
                    message=f"'{state}' has no GitLab representation: no issue could be in it",
                    hint=f"add tracker.state_labels.{state}: jidoka::{key.replace(' ', '-')}",
                )
            )
    scopes = {s for s in map(label_scope, config.state_labels.values()) if s is not None}
    others = [(f"tracker.priority_labels.{x}", x) for x in config.priority_labels]
    others += [("tracker.paused_labels", x) for x in config.paused_labels]
    others += [("tracker.required_labels", x) for x in config.required_labels]
    for path, label in others:
        scope = label_scope(label)
        if scope is not None and scope in scopes:
            problems.append(
                Problem(
                    path=path,
                    message=f"'{label}' shares the scope '{scope}::' with state labels: GitLab "
                    "keeps one label per scope, so moving an issue would remove it",
                    hint="give state labels a scope of their own (jidoka::todo, ...)",
                )
            )
    return problems


def _github_mapping_problems(tracker: GitHubTrackerConfig) -> list[Problem]:
    """A GitHub issue must read as exactly one state, and every declared state must be
    writable: otherwise the adapter would have to guess (see docs/trackers.md#states)."""
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
        case GitHubTrackerConfig() | LinearTrackerConfig() | GitLabTrackerConfig():
            values.append(tracker.api_key)
        case JiraTrackerConfig():
            values += [tracker.email, tracker.api_token]
    review = config.review
    if review is not None:
        values += [forge.api_key for forge in (review.github, review.gitlab) if forge is not None]
    for value in values:
        names.update(pattern.findall(value))
    for value in config.agent.env.values():
        if is_env_ref(value):
            names.add(value[1:])
    return sorted(names)
