"""Loading a WORKFLOW.md is total and bounded: any bytes give a loaded workflow or typed problems
that name where they are, within seconds. One regression test per failure fuzzing found, then a
mutation fuzzer over whole files. (The prompt's Liquid limits: ``test_prompt.py``; ``jidoka
check`` on the same nasty files: ``tests/cli/test_check.py``.)

``JIDOKA_FUZZ_EXAMPLES`` raises the fuzzer's example budget (default: small, for CI)."""

from __future__ import annotations

import copy
import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from jidoka.prompt import (
    RENDER_TIME_LIMIT_S,
)
from jidoka.workflow_file import (
    MAX_PROBLEMS,
    MAX_WORKFLOW_BYTES,
    MAX_YAML_DEPTH,
    WorkflowFileError,
    load_workflow,
    parse_workflow,
)
from tests.support.linekit import base_front_matter
from tests.support.workflow_md import (
    BASE_FRONT,
    NOWHERE,
    QUICK_S,
    bomb,
    document,
    edited,
    only_problem,
    problems_of,
)


def test_the_base_document_loads() -> None:
    """Every test below breaks this document in one place: it must be valid to start with."""
    assert parse_workflow(document(), NOWHERE).config.line == "x"


# --------------------------------------------------------------------------------------------
# YAML: dates, nesting, aliases, numbers
# --------------------------------------------------------------------------------------------


def test_an_invalid_date_is_text_not_a_crash() -> None:
    """PyYAML turned ``2024-13-45`` into ``datetime.date(2024, 13, 45)``: a ValueError."""
    loaded = parse_workflow(
        document(edited("base_branch: main", "base_branch: 2024-13-45")), NOWHERE
    )
    assert loaded.config.workspace.base_branch == "2024-13-45"


def test_an_invalid_date_where_a_number_goes_is_a_problem_at_its_key() -> None:
    found = only_problem(document(edited("timeout_s: 10", "timeout_s: 2024-13-45")))
    assert found.path == "hooks.timeout_s"
    assert "valid integer" in found.message


def test_a_valid_date_is_text_too() -> None:
    loaded = parse_workflow(document(edited("line: x", "line: 2024-01-31")), NOWHERE)
    assert loaded.config.line == "2024-01-31"


def test_an_explicit_invalid_timestamp_is_a_problem_at_its_key() -> None:
    found = only_problem(
        document(edited("base_branch: main", "base_branch: !!timestamp 2024-13-45"))
    )
    assert found.path == "workspace.base_branch"
    assert "month must be in 1..12" in found.message
    line = BASE_FRONT.splitlines().index("  base_branch: main") + 2
    assert f"(line {line}, column" in found.message


def test_nesting_1000_deep_in_flow_style() -> None:
    found = only_problem(document(edited("line: x", "line: x\nextra: " + "[" * 1000 + "]" * 1000)))
    assert found.path.startswith("extra.0.0.0")
    assert f"nested deeper than {MAX_YAML_DEPTH} levels" in found.message


def test_nesting_1000_deep_in_block_style() -> None:
    """Compact block sequences (``- - - x``) nest one level per two characters."""
    found = only_problem(document(edited("line: x", "line: x\nextra:\n  " + "- " * 1000 + "x")))
    assert found.path.startswith("extra.0.0.0")
    assert f"nested deeper than {MAX_YAML_DEPTH} levels" in found.message


def test_nested_block_mappings_deeper_than_the_limit() -> None:
    levels = "".join(f"{' ' * depth}k{depth}:\n" for depth in range(1, 200))
    found = only_problem(document(edited("line: x", f"line: x\nextra:\n{levels}")))
    assert found.path.startswith("extra.k1.k2.k3")
    assert "nested deeper than" in found.message


def test_nesting_within_the_limit_is_fine_for_yaml() -> None:
    """Depth 40 parses; the value is then only an unknown key, like any other."""
    found = only_problem(document(edited("line: x", "line: x\nextra: " + "[" * 40 + "]" * 40)))
    assert found.path == "extra"
    assert "unknown key" in found.message


def test_an_alias_bomb_in_tracker_kind() -> None:
    """pydantic echoed the expanded value of ``tracker.kind`` in its error: 9**8 scalars."""
    started = time.monotonic()
    found = only_problem(document(edited("  kind: local", f"  kind: {bomb(8)}")))
    assert found.path.startswith("tracker.kind.")
    assert "aliases expand the front matter past 10,000 values" in found.message
    assert time.monotonic() - started < QUICK_S


def test_an_alias_bomb_defined_at_the_top_and_used_in_tracker_kind() -> None:
    anchors = "".join(
        f"{name}: &{name} [" + ", ".join([f"*{below}"] * 9) + "]\n"
        for below, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
    front = "a: &a [" + ", ".join(["lol"] * 9) + "]\n" + anchors
    found = only_problem(document(front + edited("  kind: local", "  kind: *i")))
    # the first anchor whose expansion crosses the bound: where the bomb starts
    assert found.path.split(".")[0] in set("bcdefghi")
    assert "past 10,000 values" in found.message


def test_an_alias_bomb_built_with_merge_keys() -> None:
    lines = ["m0: &m0 {" + ", ".join(f"k{key}: v" for key in range(10)) + "}"]
    lines += [
        f"m{level}: &m{level} {{<<: [" + ", ".join([f"*m{level - 1}"] * 10) + "]}"
        for level in range(1, 9)
    ]
    found = only_problem(document("\n".join(lines) + "\n" + BASE_FRONT))
    assert found.path.startswith("m")
    assert "past 10,000 values" in found.message


def test_aliases_repeating_long_text_are_bounded() -> None:
    text = "x" * 60_000
    front = edited("line: x", f"line: x\nlong: &t {text}\ncopies: [*t, *t, *t, *t, *t]")
    found = only_problem(document(front))
    assert found.path.startswith("copies.")
    assert "characters" in found.message


def test_an_alias_inside_its_own_value() -> None:
    found = only_problem(document(edited("line: x", "line: x\nextra: &loop [1, *loop]")))
    assert found.path == "extra.1"
    assert "contains it" in found.message


def test_aliases_nesting_deeper_than_the_limit() -> None:
    nested = "a0: &a0 " + "[" * 45 + "x" + "]" * 45 + "\na1: [" + "[" * 10 + "*a0" + "]" * 10 + "]"
    found = only_problem(document(nested + "\n" + BASE_FRONT))
    assert found.path.startswith("a1.0.0")
    assert "deeper than" in found.message


def test_a_few_aliases_load_as_shared_values() -> None:
    front = edited("  verify: ", "  after_create: &check echo ok\n  before_run: *check\n  verify: ")
    loaded = parse_workflow(document(front), NOWHERE)
    assert loaded.config.hooks.after_create == loaded.config.hooks.before_run == "echo ok"


def test_a_huge_integer() -> None:
    """Python refuses int strings over 4,300 digits with ValueError."""
    found = only_problem(document(edited("max_tokens: 200000", "max_tokens: " + "9" * 5000)))
    assert found.path == "budgets.max_tokens"
    assert "a number of 5,000 characters" in found.message


def test_a_huge_sexagesimal_integer() -> None:
    """YAML 1.1 reads ``1:59:59`` in base 60: a long one costs quadratic time to compute."""
    found = only_problem(document(edited("max_tokens: 200000", "max_tokens: 1" + ":59" * 20_000)))
    assert found.path == "budgets.max_tokens"
    assert "characters" in found.message


ODDITIES = {
    "int-tag-on-text": (
        "max_tokens: 200000",
        "max_tokens: !!int abc",
        "budgets.max_tokens",
        "as int",
    ),
    "float-tag-on-text": (
        "max_tokens: 200000",
        "max_tokens: !!float abc",
        "budgets.max_tokens",
        "as float",
    ),
    "bool-tag-on-text": (
        "max_tokens: 200000",
        "max_tokens: !!bool maybe",
        "budgets.max_tokens",
        "as bool",
    ),
    "bad-base64": ("line: x", "line: !!binary a", "line", "base64"),
    "python-tag": ("line: x", "line: !!python/name:os.system ''", "line", "constructor"),
    "undefined-alias": ("line: x", "line: *nowhere", "line", "undefined alias"),
    "bad-omap": ("line: x", "line: !!omap [a, b]", "line.0", "ordered map"),
    "duplicate-key": ("line: x", "line: x\nline: y", "line", "duplicate key 'line'"),
    "duplicate-key-via-anchor": (
        "line: x",
        "&key line: x\n*key : y",
        "line",
        "duplicate key 'line'",
    ),
    "sequence-key": ("line: x", "line: x\n? [a, b]\n: 1", "(front matter)", "plain text"),
    "mapping-key": ("line: x", "line: x\nextra: {? {a: 1} : 1}", "extra", "plain text"),
    "nul-escape": ("line: x", 'line: x\nextra: "a\\0b"', "extra", "NUL"),
    "surrogate-escape": (
        "  verify: ",
        '  after_create: "\\ud800"\n  verify: ',
        "hooks.after_create",
        "surrogate",
    ),
    "nul-byte": ("line: x", "line: x\x00", "(front matter)", "not allowed"),
    "tab-indent": ("line: x", "line: x\n\tbad: 1", "(front matter)", "'\\t'"),
    "non-string-keys": ("line: x", "line: x\n1: a\nnull: b", "1", "Keys should be strings"),
}


@pytest.mark.parametrize("oddity", sorted(ODDITIES))
def test_yaml_oddities_are_problems_at_their_key(oddity: str) -> None:
    old, new, path, fragment = ODDITIES[oddity]
    found = problems_of(document(edited(old, new)))
    assert path in {p.path for p in found}, found
    assert any(fragment in p.message for p in found if p.path == path), found


def test_yaml_collections_of_other_types_are_judged_by_the_schema() -> None:
    """``!!set`` and ``!!binary`` construct fine; pydantic then reads them as list and str."""
    front = edited(
        "  active_states:\n  - Todo\n  - In Progress", "  active_states: !!set {Todo, In Progress}"
    )
    front = front.replace("line: x", "line: !!binary eA==")  # "x"
    loaded = parse_workflow(document(front), NOWHERE)
    assert loaded.config.line == "x"
    assert sorted(loaded.config.tracker.active_states) == ["In Progress", "Todo"]


def test_a_byte_order_mark_is_accepted() -> None:
    assert parse_workflow(b"\xef\xbb\xbf" + document(), NOWHERE).config.line == "x"


def test_too_many_values_stop_the_parse_early() -> None:
    front = BASE_FRONT + "".join(f"extra{index}: {index}\n" for index in range(9_000))
    found = only_problem(document(front))
    assert "more than 10,000 values" in found.message


# --------------------------------------------------------------------------------------------
# The file itself, and the problems reported
# --------------------------------------------------------------------------------------------


def test_a_file_over_256_kib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "WORKFLOW.md"
    path.write_bytes(document(body="x" * MAX_WORKFLOW_BYTES))
    with pytest.raises(WorkflowFileError) as caught:
        load_workflow(path)
    [found] = caught.value.problems
    assert found.path == "(file)"
    assert "workflow_too_large" in found.message


def test_a_pipe_is_not_read(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: it is refused unopened."""
    fifo = tmp_path / "WORKFLOW.md"
    os.mkfifo(fifo)
    with pytest.raises(WorkflowFileError) as caught:
        load_workflow(fifo)
    assert "not a regular file" in caught.value.problems[0].message


def test_a_symlink_loop_is_a_problem(tmp_path: Path) -> None:
    """``Path.resolve(strict=True)`` raises RuntimeError, not OSError, on a loop."""
    loop = tmp_path / "WORKFLOW.md"
    loop.symlink_to(loop)
    with pytest.raises(WorkflowFileError) as caught:
        load_workflow(loop)
    assert caught.value.problems[0].path == "(file)"


def test_problems_do_not_echo_megabytes() -> None:
    key = "k" * 1000  # YAML's longest simple key
    tag = "t" * 100_000
    front = edited("line: x", f"line: x\n{key}: 1").replace("kind: local", f"kind: {tag}")
    found = problems_of(document(front))
    assert {p.path for p in found} >= {"tracker.kind"}
    assert all(len(p.path) <= 200 and len(p.message) <= 1_000 for p in found)
    assert any(p.path.startswith("kkk") for p in found)


def test_problems_are_capped_with_a_count_of_the_rest() -> None:
    lines = "".join(f"  unknown_{index}: 1\n" for index in range(500))
    found = problems_of(document(edited("hooks:\n", "hooks:\n" + lines)))
    assert len(found) == MAX_PROBLEMS
    assert found[-1].path == "(file)"
    assert found[-1].message == f"{500 - (MAX_PROBLEMS - 1)} more problems not shown"


def test_control_characters_are_escaped_in_problems() -> None:
    found = only_problem(document(edited("line: x", 'line: x\n"\\e[2Jred": 1')))
    assert found.path == "\\x1b[2Jred"


def test_cross_key_checks_stay_linear_on_huge_lists() -> None:
    """Suggestions compared every wrong name with every state: 10 s for 2,400 of each."""
    states = ", ".join(f"S{index}" for index in range(2_400))
    by_state = ", ".join(f"X{index}: 1" for index in range(2_400))
    front = edited("  active_states:\n  - Todo\n  - In Progress", f"  active_states: [{states}]")
    front = front.replace("  max_agents: 4", f"  max_agents: 4\n  by_state: {{{by_state}}}")
    started = time.monotonic()
    found = problems_of(document(front))
    assert "concurrency.by_state.X0" in {p.path for p in found}
    assert time.monotonic() - started < QUICK_S


# --------------------------------------------------------------------------------------------
# The fuzzer: mutations of a valid file never give anything but a result or typed problems
# --------------------------------------------------------------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("JIDOKA_FUZZ_EXAMPLES", "100"))


def _key_paths(value: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in cast(dict[str, object], value).items():
            found.extend(_key_paths(child, (*prefix, key)))
    return found


FUZZ_FRONT = base_front_matter("fuzz")
KEY_PATHS = _key_paths(FUZZ_FRONT)

YAML_SNIPPETS = [
    bomb(6),
    "&self [1, *self]",
    "*undefined",
    "2024-13-45",
    "2024-02-30T25:61:61Z",
    "!!timestamp 2024-13-45",
    "!!timestamp nonsense",
    "!!int abc",
    "!!float abc",
    "!!bool maybe",
    "!!null x",
    "!!str 12",
    "!!binary aGVsbG8=",
    "!!binary '!!!'",
    "!!set {a, b}",
    "!!set {? [a]}",
    "!!omap [{a: 1}, {b: 2}]",
    "!!omap [a]",
    "!!pairs [{a: 1}]",
    "!!python/name:os.system ''",
    "!custom value",
    "~",
    "",
    "[]",
    "{}",
    "[a, b, 1, 2.5, true, null]",
    "{a: 1, a: 2}",
    "{? [a]: 1}",
    "{<<: {kind: local}}",
    "{<<: [1]}",
    "{<<: *undefined}",
    '"\\ud800"',
    '"\\0"',
    '"\\e[31m"',
    "'\t'",
    ".inf",
    "-.nan",
    "0x" + "f" * 300,
    "0o777",
    "1_000_000",
    "1:59:59",
    "&anchor value",
    "&anchor {kind: local}",
]

yaml_values = st.one_of(
    st.sampled_from(YAML_SNIPPETS),
    st.builds(
        "{:04d}-{:d}-{:d}".format,
        st.integers(0, 9999),
        st.integers(0, 99),
        st.integers(0, 99),
    ),
    st.integers(1, 1_200).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 1_200).map(lambda depth: "{a: " * depth + "1" + "}" * depth),
    st.integers(1, 6_000).map(lambda digits: "9" * digits),
    st.integers(1, 3_000).map(lambda parts: "1" + ":59" * parts),
    st.integers(0, 100_000).map(lambda length: "'" + "x" * length + "'"),
    st.integers(1, 5_000).map(lambda count: "[" + ", ".join(["*undefined"] * count) + "]"),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    ).map(json.dumps),
    st.text(max_size=40),
)

LIQUID_SNIPPETS = [
    "{% for i in (1..1000000000) %}x{% endfor %}",
    "{% for i in (1..1000) %}{% for j in (1..1000) %}{% endfor %}{% endfor %}",
    "{% for i in (1..100000) %}" + "x" * 100 + "{% endfor %}",
    "{% assign s = 'ab' %}{% for i in (1..64) %}{% assign s = s | append: s %}{% endfor %}",
    "{% capture s %}x{% endcapture %}{% for i in (1..64) %}"
    "{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}",
    "{{ (1..100000000) | join: ',' }}",
    "{{ (1..99999999999999999999999999) | size }}",
    "{% for i in (1..99999999999999999999999999) %}{% endfor %}",
    "{{ 'aaaaaaaaaa'" + " | replace: 'a', 'aaaaaaaaaa'" * 8 + " }}",
    "{% assign n = 10 %}{% for i in (1..20) %}{% assign n = n | times: n %}{% endfor %}{{ n }}",
    "{{ issue.description | split: '' | join: 'xxxxxxxxxx' }}",
    "{% assign a = 'x' | split: ',' %}{% for i in (1..40) %}{% assign a = a | concat: a %}"
    "{% endfor %}",
    "{% if true %}" * 40 + "{% endif %}" * 40,
    "{% for i in (1..2) %}" * 40 + "{% endfor %}" * 40,
    "{" * 3_000,
    "{% raw %}" * 3_000,
    "{% doc %}" * 3_000,
    "{% comment %}" + "{{ " * 2_000,
    "{% if " + " and ".join(["true"] * 3_000) + " %}{% endif %}",
    "{{ issue.nope }}",
    "{{ issue.title | nope }}",
    "{% include 'x' %}",
    "{% render 'x' %}",
    "{% tablerow i in (1..1000000) %}{% endtablerow %}",
    "{% cycle 'a', 'b' %}{% increment x %}{% decrement x %}{% ifchanged %}x{% endifchanged %}",
    "{{ 1 | divided_by: 0 }}{{ 1 | modulo: 0 }}",
    "{{ 'x' | date: '%Q' }}{{ 1e308 | times: 1e308 }}",
    "{% liquid\nassign x = 1\necho x %}",
    "{% break %}{% continue %}",
    "{{ attempt | plus: 1 }}{{ issue.labels | first }}{{ issue.blocked_by | map: 'id' }}",
    "{{",
    "}}",
    "{%",
    "%}",
    "{% endfor %}",
    "{% else %}",
    "{% raw %}{{ kept }}{% endraw %}",
]
liquid_values = st.sampled_from(LIQUID_SNIPPETS) | st.text(max_size=40)


def _with_placeholder(front: dict[str, Any], path: tuple[str, ...], placeholder: str) -> None:
    """Put ``placeholder`` at ``path``, unless an earlier replacement took away its parent."""
    target: Any = front
    for key in path[:-1]:
        target = target.get(key) if isinstance(target, dict) else None
    if isinstance(target, dict):
        target[path[-1]] = placeholder


@st.composite
def mutated_workflows(draw: DrawFn) -> bytes:
    """A valid WORKFLOW.md with values replaced by YAML snippets and top-level keys added, or
    Liquid spliced into the body, or both, then maybe a few bytes flipped. A broken front
    matter hides the template, so each kind of mutation also comes alone."""
    mutate_front, mutate_body = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
    front = copy.deepcopy(FUZZ_FRONT)
    replacements: dict[str, str] = {}
    for index in range(draw(st.integers(1, 3)) if mutate_front else 0):
        placeholder = f"PLACEHOLDER{index}X"
        _with_placeholder(front, draw(st.sampled_from(KEY_PATHS)), placeholder)
        replacements[placeholder] = draw(yaml_values)
    text = yaml.safe_dump(front, sort_keys=False, width=10**9)
    for index in range(draw(st.integers(0, 2)) if mutate_front else 0):
        placeholder = f"PLACEHOLDERTOP{index}X"
        text = f"top{index}: {placeholder}\n" + text
        replacements[placeholder] = draw(yaml_values)
    for placeholder, snippet in replacements.items():
        text = text.replace(placeholder, snippet)
    body = "Work on {{ issue.identifier }}: {{ issue.title }}\n{{ issue.description }}\n"
    for _ in range(draw(st.integers(1, 3)) if mutate_body else 0):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(liquid_values) + body[at:]
    raw = bytearray(f"---\n{text}---\n{body}".encode())
    # most flips make the file invalid UTF-8: flip in one example out of four or so
    if draw(st.integers(0, 3)) == 3:
        flip = st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255))
        for position, byte in draw(st.lists(flip, min_size=1, max_size=2)):
            raw[position] = byte
    return bytes(raw)


@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=RENDER_TIME_LIMIT_S + 5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=mutated_workflows())
def test_any_mutated_workflow_gives_a_workflow_or_typed_problems(raw: bytes) -> None:
    """Any exception but WorkflowFileError fails this test, and so does an example slower
    than the deadline: the render time limit plus a margin, to catch hangs, not to time."""
    try:
        loaded = parse_workflow(raw, NOWHERE)
    except WorkflowFileError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.path and problem.message
            assert "internal_error" not in problem.message, problem
            assert len(problem.path) <= 200 and len(problem.message) <= 1_000
            # problems travel in an activity failure: they must serialize (no surrogates)
            problem.model_dump_json()
    else:
        # a loaded workflow travels in Temporal payloads
        assert len(loaded.model_dump_json()) < 2 * 1024 * 1024
