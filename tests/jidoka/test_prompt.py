"""The prompt's Liquid template (``jidoka.prompt``): every render is bounded, in ``jidoka check``
(through the WORKFLOW.md loader, which renders the template against a sample issue) and per
attempt (``render_prompt``) alike: loops, output size, filters, nesting, time."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from jidoka.models import BlockerRef, Issue, Problem
from jidoka.prompt import (
    LOOP_ITERATION_LIMIT,
    RENDER_TIME_LIMIT_S,
    PromptError,
    render_prompt,
    template_problems,
)
from tests.support.workflow_md import BODY_LINE, QUICK_S, document, only_problem


def prompt_problem(body: str) -> Problem:
    found = only_problem(document(body=body))
    assert found.path == "(prompt)"
    return found


def test_liquid_nested_loops_over_a_big_range_count_together() -> None:
    found = prompt_problem(
        "Intro\n{% for i in (1..1000) %}{% for j in (1..1000) %}{% endfor %}{% endfor %}"
    )
    assert f"template_render_error (line {BODY_LINE + 1})" in found.message
    assert f"loops exceeded the limit of {LOOP_ITERATION_LIMIT:,} iterations" in found.message


def test_liquid_a_billion_item_range_is_refused_before_iterating() -> None:
    found = prompt_problem("{% for i in (1..1000000000) %}x{% endfor %}")
    assert "loops exceeded the limit" in found.message


def test_liquid_output_growing_without_bound() -> None:
    found = prompt_problem("{% for i in (1..100000) %}" + "x" * 1000 + "{% endfor %}")
    assert "the output exceeded the limit of 1,048,576 bytes" in found.message


def test_liquid_capture_doubling_in_a_loop() -> None:
    found = prompt_problem(
        "{% assign s = 'ab' %}{% for i in (1..64) %}"
        "{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}{{ s | size }}"
    )
    assert "exceeded the limit" in found.message


def test_liquid_assign_doubling_in_a_loop() -> None:
    found = prompt_problem(
        "{% assign s = 'ab' %}{% for i in (1..64) %}{% assign s = s | append: s %}{% endfor %}"
    )
    assert "append: built 2,097,152 characters" in found.message


def test_liquid_a_filter_over_a_huge_range() -> None:
    """Ranges are lazy: the loop limit never sees one iterated by ``join``."""
    found = prompt_problem("{{ (1..100000000) | join: ',' }}")
    assert "join: a range of more than" in found.message


def test_liquid_replace_multiplying_a_string() -> None:
    chain = " | replace: 'a', 'aaaaaaaaaa'" * 8
    found = prompt_problem("{{ 'aaaaaaaaaa'" + chain + " | size }}")
    assert "replace: the result would have" in found.message


def test_liquid_numbers_squared_in_a_loop() -> None:
    """Printing an int over 4,300 digits raises ValueError, not a Liquid error."""
    found = prompt_problem(
        "{% assign n = 10 %}{% for i in (1..20) %}{% assign n = n | times: n %}{% endfor %}{{ n }}"
    )
    assert "times: the number has grown too large" in found.message


def test_liquid_nesting_is_bounded() -> None:
    found = prompt_problem("{% if true %}" * 40 + "x" + "{% endif %}" * 40)
    assert "template_parse_error" in found.message
    assert "nesting exceeded the limit of 30 levels" in found.message


def test_liquid_unclosed_openers_are_refused_before_the_lexer_sees_them() -> None:
    """Liquid's lexer scans to the end of the template for each unclosed ``{{``: ``{`` x 40,000
    took over a minute, in a parse nothing can interrupt."""
    for body in ("{" * 200_000, "{% raw %}" * 20_000, "{% comment %}" + "{{ " * 50_000):
        started = time.monotonic()
        found = prompt_problem(body)
        assert "never closed" in found.message
        assert time.monotonic() - started < QUICK_S


def test_liquid_many_sequential_loops_hit_the_time_limit_and_the_render_stops() -> None:
    """Each loop is within the iteration limit, together they are not: the deadline stops the
    render, and the render thread stops itself instead of running on abandoned."""
    body = "{% for i in (1..100000) %}{% endfor %}" * 6_000
    started = time.monotonic()
    found = template_problems(body)
    assert [p.message for p in found] == [
        f"template_render_error (line 1): rendering exceeded the {RENDER_TIME_LIMIT_S:g} s "
        "time limit"
    ]
    assert time.monotonic() - started < RENDER_TIME_LIMIT_S + 2
    assert not _render_thread_alive_after(seconds=2.0)


def _render_thread_alive_after(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(thread.name == "jidoka-template" for thread in threading.enumerate()):
            return False
        time.sleep(0.05)
    return True


def realistic_issue(description_chars: int = 200_000) -> Issue:
    line = "The widget must not crash when the input is empty; see the logs below.\n"
    return Issue(
        id="ID-1",
        identifier="ENG-1",
        title="Fix the widget",
        description=(line * (description_chars // len(line) + 1))[:description_chars],
        priority=2,
        state="Todo",
        url="https://example.invalid/ENG-1",
        labels=[f"label-{index}" for index in range(100)],
        blocked_by=[
            BlockerRef(id=f"B{index}", identifier=f"ENG-{index + 100}", state="Todo")
            for index in range(100)
        ],
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        updated_at=datetime(2026, 1, 2, tzinfo=UTC),
    )


REALISTIC_TEMPLATE = """You are working on {{ issue.identifier }}: {{ issue.title }}
{% if issue.labels.size > 0 %}Labels: {{ issue.labels | join: ", " }}{% endif %}
{% for label in issue.labels %}- {{ label | upcase }}
{% endfor %}
{% for blocker in issue.blocked_by %}Blocked by {{ blocker.identifier }} ({{ blocker.state }})
{% for label in issue.labels %}{% if label == "label-0" %}  also {{ label }}{% endif %}{% endfor %}
{% endfor %}
{% assign lines = issue.description | split: "\n" %}{% for line in lines limit: 5000 %}> {{ line }}
{% endfor %}
{{ issue.description }}
{% if attempt %}Attempt {{ attempt }}{% endif %}"""


def test_a_realistic_prompt_renders() -> None:
    """Loops over labels and blockers (nested: 10,000 iterations), a 200 KB description
    printed whole and quoted line by line: well within every limit."""
    issue = realistic_issue()
    started = time.monotonic()
    rendered = render_prompt(REALISTIC_TEMPLATE, issue, 2)
    assert time.monotonic() - started < QUICK_S
    assert "Labels: label-0, label-1" in rendered
    assert "- LABEL-99\n" in rendered
    assert "Blocked by ENG-199 (Todo)" in rendered
    assert issue.description is not None and issue.description in rendered
    assert rendered.rstrip().endswith("Attempt 2")
    assert template_problems(REALISTIC_TEMPLATE) == []


def test_render_prompt_applies_the_same_limits() -> None:
    with pytest.raises(PromptError, match=r"^template_render_error \(line 1\): loops exceeded"):
        render_prompt("{% for label in (1..1000000) %}{% endfor %}", realistic_issue(100), None)
    template = "{% for label in issue.labels %}{% for b in issue.blocked_by %}" * 3
    template += "{% endfor %}{% endfor %}" * 3
    with pytest.raises(PromptError, match="loops exceeded the limit"):
        render_prompt(template, realistic_issue(100), None)


def test_render_prompt_turns_python_errors_into_prompt_errors() -> None:
    with pytest.raises(PromptError, match="template_render_error"):
        render_prompt("{{ (1..99999999999999999999999999) | size }}", realistic_issue(100), None)
    with pytest.raises(PromptError, match="template_parse_error"):
        render_prompt(
            "{% if " + " and ".join(["true"] * 5_000) + " %}{% endif %}", realistic_issue(100), None
        )
