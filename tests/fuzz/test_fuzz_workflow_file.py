"""WORKFLOW.md, fuzzed: the front matter and the prompt template.

The loader promises to be total and bounded (:mod:`jidoka.workflow_file`): for any bytes it
returns a :class:`LoadedWorkflow` or raises :class:`WorkflowFileError` whose problems name
where they are, within seconds. An exception it did not foresee still reaches the user as a
problem, but one saying ``internal_error``: that is a bug, so these properties fail on it.

The inputs: the valid front matter of the tests (``tests.support.linekit.base_front_matter``)
with values replaced by random structures, keys dropped or added, raw YAML spliced in, lines
deleted, repeated, re-indented or swapped; YAML-ish noise; arbitrary bytes. The prompt body is
a Liquid-ish template grown from a small grammar (outputs, filters, every block tag, broken
delimiters), rendered against random issues by :func:`render_prompt` (only
:class:`PromptError`, within the render time limit) and checked by :func:`template_problems`
(a template that passes the check renders for the sample issue).
"""

from __future__ import annotations

import copy
import tempfile
from datetime import UTC
from pathlib import Path
from typing import Any

import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from jidoka.models import BlockerRef, Issue, LoadedWorkflow, Problem
from jidoka.prompt import (
    OUTPUT_LIMIT_BYTES,
    RENDER_TIME_LIMIT_S,
    SAMPLE_ISSUE,
    PromptError,
    render_prompt,
    template_problems,
)
from jidoka.workflow_file import (
    MAX_PROBLEMS,
    WorkflowFileError,
    load_workflow,
    parse_workflow,
)
from tests.fuzz.support import NASTY_TEXT, bounded, flipped, fuzzing, json_values, mutated
from tests.support.linekit import base_front_matter

RENDER_LIMIT_S = RENDER_TIME_LIMIT_S + 3.0
"""The template's own time limit, plus the thread hand-over and a loaded CI machine."""
NOWHERE = Path("/nonexistent/fuzz/WORKFLOW.md")
FRONT = base_front_matter("fuzz")

# --------------------------------------------------------------------------------------------
# Liquid-ish templates
# --------------------------------------------------------------------------------------------

VARIABLES = [
    "issue.title",
    "issue.identifier",
    "issue.description",
    "issue.labels",
    "issue.blocked_by",
    "issue.priority",
    "issue.created_at",
    "issue.url",
    "issue.branch_name",
    "issue.description_cut",
    "issue.labels[0]",
    "issue.labels.first",
    "issue.blocked_by.first.identifier",
    "issue['title']",
    "issue",
    "attempt",
    "forloop.index",
    "item",
    "x",
    "issue.nope",
    "nope",
    "'text'",
    '"q"',
    "1",
    "-2.5",
    "99999999999999999999999",
    "true",
    "nil",
    "empty",
    "blank",
    "(1..3)",
    "(attempt..3)",
    "(1..100001)",
    "(1..99999999999999999999)",
]
FILTERS = [
    "upcase",
    "downcase",
    "capitalize",
    "size",
    "first",
    "last",
    "strip",
    "escape",
    "json",
    "join: ', '",
    "split: ''",
    "split: ' '",
    "append: 'x'",
    "append: issue.title",
    "prepend: issue.description",
    "plus: 1",
    "times: 1000",
    "times: issue.priority",
    "divided_by: 0",
    "modulo: 0",
    "minus: attempt",
    "replace: 'a', 'bbbbbbbbbb'",
    "remove: 'e'",
    "slice: 0, 3",
    "slice: -99999999999",
    "truncate: 5",
    "truncatewords: 2",
    "default: 'none'",
    "date: '%Y-%m-%d'",
    "date: '%Q'",
    "map: 'identifier'",
    "where: 'state', 'Done'",
    "sort",
    "sort_natural",
    "uniq",
    "reverse",
    "compact",
    "concat: issue.labels",
    "abs",
    "ceil",
    "round: 2",
    "url_encode",
    "newline_to_br",
    "strip_html",
    "nope",
    "upcase: 1, 2",
]
identifiers = st.sampled_from(["x", "item", "s", "issue", "attempt", "forloop"])


@st.composite
def expressions(draw: DrawFn) -> str:
    filters = draw(st.lists(st.sampled_from(FILTERS), max_size=3))
    return " | ".join([draw(st.sampled_from(VARIABLES)), *filters])


@st.composite
def outputs(draw: DrawFn) -> str:
    left, right = draw(st.sampled_from([("{{ ", " }}"), ("{{- ", " -}}"), ("{{", "}}")]))
    return f"{left}{draw(expressions())}{right}"


@st.composite
def simple_tags(draw: DrawFn) -> str:
    name = draw(identifiers)
    return draw(
        st.sampled_from(
            [
                f"{{% assign {name} = {draw(expressions())} %}}",
                f"{{% increment {name} %}}",
                f"{{% decrement {name} %}}",
                f"{{% echo {draw(expressions())} %}}",
                "{% cycle 'a', 'b', 'c' %}",
                "{% break %}",
                "{% continue %}",
                "{% include 'x' %}",
                "{% render 'x' %}",
                f"{{% liquid\nassign {name} = 1\necho {name} %}}",
                "{% # a comment %}",
                "{% nope %}",
            ]
        )
    )


def _block(draw: DrawFn, children: list[str]) -> str:
    body = "".join(children)
    name = draw(identifiers)
    condition = draw(expressions())
    limit = draw(st.sampled_from(["", " limit: 2", " offset: 1", " reversed", " limit: -1"]))
    shapes = [
        f"{{% if {condition} %}}{body}{{% endif %}}",
        f"{{% if {condition} == 1 %}}{body}{{% elsif x %}}y{{% else %}}{body}{{% endif %}}",
        f"{{% unless {condition} %}}{body}{{% endunless %}}",
        f"{{% for {name} in {condition}{limit} %}}{body}{{% else %}}empty{{% endfor %}}",
        f"{{% tablerow {name} in {condition} cols:2 %}}{body}{{% endtablerow %}}",
        f"{{% case {condition} %}}{{% when 1, 'a' %}}{body}{{% else %}}z{{% endcase %}}",
        f"{{% capture {name} %}}{body}{{% endcapture %}}",
        f"{{% ifchanged %}}{body}{{% endifchanged %}}",
        f"{{% raw %}}{body}{{% endraw %}}",
        f"{{% comment %}}{body}{{% endcomment %}}",
        f"{{% doc %}}{body}{{% enddoc %}}",
    ]
    return draw(st.sampled_from(shapes))


@st.composite
def blocks(draw: DrawFn, children: st.SearchStrategy[str]) -> str:
    return _block(draw, draw(st.lists(children, min_size=1, max_size=3)))


template_parts = st.recursive(
    st.one_of(st.text(max_size=12), outputs(), simple_tags(), st.sampled_from(NASTY_TEXT[:15])),
    blocks,
    max_leaves=10,
)
BROKEN = ["{{", "}}", "{%", "%}", "{% endif %}", "{% endfor %}", "{% else %}", "{", "}", "\x00"]


@st.composite
def templates(draw: DrawFn) -> str:
    """A template from the grammar, sometimes broken by a stray delimiter or a cut."""
    template = "".join(draw(st.lists(template_parts, max_size=5)))
    if template and draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(template)))
        if draw(st.booleans()):
            template = template[:at] + draw(st.sampled_from(BROKEN)) + template[at:]
        else:
            template = template[:at]
    return template


blockers = st.builds(
    BlockerRef,
    id=st.none() | st.text(max_size=8),
    identifier=st.none() | st.text(max_size=8),
    state=st.none() | st.text(max_size=8),
)
issues = st.builds(
    Issue,
    id=st.text(min_size=1, max_size=12),
    identifier=st.text(min_size=1, max_size=12) | st.sampled_from(NASTY_TEXT),
    title=st.text(max_size=40) | st.sampled_from(NASTY_TEXT),
    description=st.none() | st.text(max_size=300) | st.sampled_from(NASTY_TEXT),
    priority=st.none() | st.integers() | st.sampled_from([10**300, -(10**300)]),
    state=st.text(min_size=1, max_size=12),
    branch_name=st.none() | st.text(max_size=12),
    url=st.none() | st.text(max_size=30),
    labels=st.lists(st.text(max_size=10), max_size=5),
    blocked_by=st.lists(blockers, max_size=3),
    created_at=st.none() | st.datetimes(timezones=st.just(UTC)),
    updated_at=st.none() | st.datetimes(timezones=st.just(UTC)),
    description_cut=st.integers(min_value=0),
)

# --------------------------------------------------------------------------------------------
# WORKFLOW.md documents
# --------------------------------------------------------------------------------------------

YAML_SNIPPETS = [
    "&a [1, *a]",
    "*undefined",
    "!!python/object:os.system ''",
    "!!binary '!!!'",
    "!!timestamp 2024-13-45",
    "!!int abc",
    "!!set {a, b}",
    "!!omap [a]",
    "{<<: [1]}",
    "{? [a]: 1}",
    '"\\ud800"',
    '"\\0"',
    "'\t'",
    "[" * 60 + "]" * 60,
    "{a: " * 60 + "1" + "}" * 60,
    "[" + ", ".join(["*undefined"] * 50) + "]",
    "1:59:59:59",
    "0x" + "f" * 200,
    "9" * 200,
    ".nan",
    "-.inf",
    "|\n  block\n  text",
    ">-\n  folded",
    "'unterminated",
    "- a\n- b",
    "{",
    "]",
    "@reserved",
    "`reserved",
    "%TAG ! tag:x,2024:",
    "? complex",
    "~",
]


def _key_paths(value: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():  # pyright: ignore[reportUnknownVariableType]
            found.extend(_key_paths(child, (*prefix, str(key))))  # pyright: ignore[reportUnknownArgumentType]
    return found


KEY_PATHS = _key_paths(FRONT)


@st.composite
def dumped_front_matters(draw: DrawFn) -> str:
    """The valid front matter as a structure, mutated, then dumped in a random YAML style."""
    front = draw(mutated(copy.deepcopy(FRONT)))
    if not isinstance(front, dict):
        front = {"line": front}
    try:
        return yaml.safe_dump(
            front,
            sort_keys=draw(st.booleans()),
            default_flow_style=draw(st.sampled_from([False, True, None])),
            width=draw(st.sampled_from([80, 20, 10**6])),
            allow_unicode=draw(st.booleans()),
        )
    except yaml.YAMLError:  # a value PyYAML itself cannot write: write the valid one
        return yaml.safe_dump(FRONT, sort_keys=False)


@st.composite
def spliced_front_matters(draw: DrawFn) -> str:
    """Raw YAML spliced in at one to three key paths of the valid front matter."""
    front: dict[str, Any] = copy.deepcopy(FRONT)
    replacements: dict[str, str] = {}
    for index in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(KEY_PATHS))
        target: Any = front
        for key in path[:-1]:
            target = target.get(key) if isinstance(target, dict) else None
        if isinstance(target, dict):
            placeholder = f"PLACEHOLDER{index}X"
            target[path[-1]] = placeholder
            replacements[placeholder] = draw(st.sampled_from(YAML_SNIPPETS))
    text = yaml.safe_dump(front, sort_keys=False, width=10**6)
    for placeholder, snippet in replacements.items():
        text = text.replace(placeholder, snippet)
    return text


@st.composite
def line_mutated_front_matters(draw: DrawFn) -> str:
    """The valid front matter with lines deleted, repeated, swapped, re-indented or tabbed."""
    lines = yaml.safe_dump(FRONT, sort_keys=False).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        match draw(st.sampled_from(["delete", "repeat", "swap", "indent", "dedent", "tab"])):
            case "delete" if len(lines) > 1:
                del lines[at]
            case "repeat":
                lines.insert(at, lines[at])
            case "swap":
                other = draw(st.integers(0, len(lines) - 1))
                lines[at], lines[other] = lines[other], lines[at]
            case "indent":
                lines[at] = " " * draw(st.integers(1, 5)) + lines[at]
            case "dedent":
                lines[at] = lines[at].lstrip()
            case _:
                lines[at] = "\t" + lines[at]
    return "\n".join(lines) + "\n"


yamlish = st.text(alphabet=" \t\n-:#[]{}&*!|>'\",?%@`.0123456789abcdeklinstu_", max_size=300)


@st.composite
def workflow_documents(draw: DrawFn) -> bytes:
    """A whole WORKFLOW.md: a front matter of one of the kinds above (or noise) and a body from
    the template grammar; sometimes bytes flipped, sometimes arbitrary bytes altogether."""
    match draw(st.integers(0, 19)):
        case 0 | 1 | 2 | 3 | 4 | 5:
            front = yaml.safe_dump(FRONT, sort_keys=False)
        case 6 | 7 | 8 | 9 | 10:
            front = draw(dumped_front_matters())
        case 11 | 12 | 13:
            front = draw(spliced_front_matters())
        case 14 | 15 | 16 | 17:
            front = draw(line_mutated_front_matters())
        case _:
            front = draw(yamlish)
    body = draw(st.one_of(st.just("Work on {{ issue.identifier }}"), templates()))
    fence = draw(st.sampled_from(["---", "---", "--- ", "---\r", "----", "..."]))
    raw = f"---\n{front}{fence}\n{body}\n".encode()
    match draw(st.integers(0, 9)):
        case 8:
            return draw(st.binary(max_size=300))
        case 6 | 7:
            return draw(flipped(raw))
        case _:
            return raw


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


def assert_problems_are_typed(problems: list[Problem]) -> None:
    assert problems, "a WorkflowFileError without problems"
    assert len(problems) <= MAX_PROBLEMS
    for problem in problems:
        assert problem.path and problem.message
        assert "internal_error" not in problem.message, problem
        assert len(problem.path) <= 200 and len(problem.message) <= 1_000
        assert problem.hint is None or len(problem.hint) <= 500
        # problems travel in an activity failure: they must encode (no lone surrogate)
        Problem.model_validate_json(problem.model_dump_json())


def check_loaded(loaded: LoadedWorkflow) -> None:
    """A loaded workflow travels in Temporal payloads: JSON, within limits, intact."""
    payload = loaded.model_dump_json()
    assert len(payload) < 2 * 1024 * 1024
    assert LoadedWorkflow.model_validate_json(payload) == loaded
    assert loaded.config.line


@fuzzing(ci_examples=120)
@given(raw=workflow_documents())
def test_any_document_loads_or_gives_typed_problems(raw: bytes) -> None:
    try:
        loaded = bounded(lambda: parse_workflow(raw, NOWHERE), RENDER_LIMIT_S)
    except WorkflowFileError as error:
        event("problems")
        assert_problems_are_typed(error.problems)
    else:
        event("loaded")
        check_loaded(loaded)


@fuzzing(ci_examples=40)
@given(raw=workflow_documents())
def test_a_document_on_disk_loads_like_its_bytes(raw: bytes) -> None:
    """``load_workflow`` reads the file and gives what ``parse_workflow`` gives for its bytes
    (the same problems, or the same workflow)."""
    with tempfile.TemporaryDirectory(prefix="jidoka-fuzz-") as folder:
        path = Path(folder) / "WORKFLOW.md"
        path.write_bytes(raw)
        try:
            from_disk: LoadedWorkflow | list[Problem] = bounded(
                lambda: load_workflow(path), RENDER_LIMIT_S
            )
        except WorkflowFileError as error:
            from_disk = error.problems
        try:
            from_bytes: LoadedWorkflow | list[Problem] = bounded(
                lambda: parse_workflow(raw, path.resolve()), RENDER_LIMIT_S
            )
        except WorkflowFileError as error:
            from_bytes = error.problems
    if isinstance(from_disk, list) and isinstance(from_bytes, list):
        assert_problems_are_typed(from_disk)
        # a render that hit the time limit on one read may not on the other
        if not any("time limit" in p.message for p in [*from_disk, *from_bytes]):
            assert from_disk == from_bytes
    else:
        assert from_disk == from_bytes


@fuzzing(ci_examples=60)
@given(
    flow=st.sampled_from([False, True, None]),
    width=st.sampled_from([80, 20, 10**6]),
    indent=st.integers(2, 9),
    sort_keys=st.booleans(),
    allow_unicode=st.booleans(),
)
def test_the_valid_front_matter_loads_the_same_in_any_yaml_style(
    flow: bool | None, width: int, indent: int, sort_keys: bool, allow_unicode: bool
) -> None:
    """Writing the same mapping in another YAML style changes nothing in the loaded config."""
    reference = parse_workflow(
        f"---\n{yaml.safe_dump(FRONT, sort_keys=False)}---\nDo {{{{ issue.title }}}}\n".encode(),
        NOWHERE,
    )
    front = yaml.safe_dump(
        FRONT,
        default_flow_style=flow,
        width=width,
        indent=indent,
        sort_keys=sort_keys,
        allow_unicode=allow_unicode,
    )
    raw = f"---\n{front}---\nDo {{{{ issue.title }}}}\n".encode()
    loaded = bounded(lambda: parse_workflow(raw, NOWHERE), RENDER_LIMIT_S)
    assert loaded.config == reference.config


@fuzzing(ci_examples=80)
@given(template=templates(), issue=issues, attempt=st.none() | st.integers(1, 10**30))
def test_any_template_renders_or_is_a_prompt_error(
    template: str, issue: Issue, attempt: int | None
) -> None:
    try:
        rendered = bounded(lambda: render_prompt(template, issue, attempt), RENDER_LIMIT_S)
    except PromptError as error:
        event("prompt error")
        message = str(error)
        assert message.startswith(("template_parse_error", "template_render_error")), message
        assert len(message) < 1_000
    else:
        event("rendered")
        assert isinstance(rendered, str)
        assert len(rendered.encode("utf-8", "surrogatepass")) <= OUTPUT_LIMIT_BYTES


@fuzzing(ci_examples=80)
@given(template=templates())
def test_a_template_that_passes_the_check_renders_for_the_sample_issue(template: str) -> None:
    """``jidoka check`` renders the template for the sample issue on a first attempt and on a
    retry: a template it passes must render for that issue on both, within the same limits."""
    problems = bounded(lambda: template_problems(template, first_line=7), RENDER_LIMIT_S)
    assert isinstance(problems, list)
    for problem in problems:
        assert problem.path == "(prompt)"
        assert problem.message.startswith(("template_parse_error", "template_render_error"))
        Problem.model_validate_json(problem.model_dump_json())
    if not problems:
        event("passes the check")
        for attempt in (None, 2):
            bounded(lambda: render_prompt(template, SAMPLE_ISSUE, attempt), RENDER_LIMIT_S)  # noqa: B023
    else:
        event("refused by the check")


@fuzzing(ci_examples=60)
@given(value=json_values, path=st.sampled_from(KEY_PATHS))
def test_any_value_at_any_key_loads_or_gives_problems_at_keys_of_the_file(
    value: object, path: tuple[str, ...]
) -> None:
    """One value replaced by any JSON-like value: the file loads, or every problem names a
    place in it (a key path under one of its top-level keys, or the file, front matter or
    prompt as a whole) and one of them is in the section that changed, or in a section that
    refers to it."""
    front: dict[str, Any] = copy.deepcopy(FRONT)
    target: Any = front
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        text = yaml.safe_dump(front, sort_keys=False)
    except yaml.YAMLError:
        return
    raw = f"---\n{text}---\nDo {{{{ issue.title }}}}\n".encode()
    try:
        bounded(lambda: parse_workflow(raw, NOWHERE), RENDER_LIMIT_S)
    except WorkflowFileError as error:
        event("problems")
        assert_problems_are_typed(error.problems)
        places = {*front, "(file)", "(front matter)", "(prompt)"}
        sections = {problem.path.split(".")[0] for problem in error.problems}
        assert sections <= places, sections - places
        # verdicts name tracker states, and the agent's settings depend on its kind
        related = {path[0], "verdicts", "(front matter)", "(file)"}
        assert sections & related, (path, sections)
    else:
        event("loaded")
