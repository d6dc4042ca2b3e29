"""The WORKFLOW.md contract: loader, schema, cross-key rules, paths and the strict template.
(``jidoka check``, the same contract as a user meets it: ``tests/cli/test_check.py``.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jidoka.models import Problem
from jidoka.workflow_file import WorkflowFileError, load_workflow, parse_workflow
from tests.support.linekit import base_front_matter, deep_merge
from tests.support.workflow_md import EXAMPLE, write_workflow


def problems(path: Path) -> list[Problem]:
    with pytest.raises(WorkflowFileError) as caught:
        load_workflow(path)
    return caught.value.problems


def paths_of(found: list[Problem]) -> set[str]:
    return {p.path for p in found}


def test_the_example_checks_clean() -> None:
    loaded = load_workflow(EXAMPLE)
    assert loaded.config.line == "demo"
    assert loaded.config.tracker.done_state == "Done"


def test_done_state_is_required_with_no_default(tmp_path: Path) -> None:
    front = base_front_matter("x")
    del front["tracker"]["done_state"]
    found = problems(write_workflow(tmp_path, front))
    assert "tracker.done_state" in paths_of(found)
    hint = next(p.hint for p in found if p.path == "tracker.done_state")
    assert hint is not None and "no default" in hint


def test_unknown_keys_are_rejected_with_a_suggestion(tmp_path: Path) -> None:
    front = deep_merge(
        base_front_matter("x"), {"budgets": {"max_token": 5}, "polling": {"intervall_s": 3}}
    )
    found = {p.path: p for p in problems(write_workflow(tmp_path, front))}
    assert found["budgets.max_token"].hint == "did you mean 'max_tokens'?"
    assert found["polling.intervall_s"].hint == "did you mean 'interval_s'?"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    front = deep_merge(
        base_front_matter("x"),
        {
            "budgets": {"max_token": 5},
            "verdicts": {"HALT": "Done", "SKIP": "Todo", "NOPE": "Nowhere"},
        },
    )
    found = paths_of(problems(write_workflow(tmp_path, front)))
    assert {"budgets.max_token", "verdicts.HALT", "verdicts.SKIP", "verdicts.NOPE"} <= found


@pytest.mark.parametrize(
    ("overrides", "path", "fragment"),
    [
        (
            {"tracker": {"terminal_states": ["Done", "Todo"]}},
            "tracker.terminal_states",
            "one category only",
        ),
        ({"tracker": {"working_state": "Doing"}}, "tracker.working_state", "active_states"),
        ({"tracker": {"done_state": "Todo"}}, "tracker.done_state", "active_states"),
        ({"verdicts": {"DONE": "Done", "RETRY": "Todo"}}, "verdicts.RETRY", "active states"),
        ({"verdicts": {"DONE": "Done", "DROP": "Cancelled"}}, "verdicts.DROP", "without shipping"),
        (
            {
                "tracker": {"backlog_states": ["Later"]},
                "verdicts": {"DONE": "Done", "DEFER": "Later"},
            },
            "verdicts.DEFER",
            "operator-only",
        ),
        ({"verdicts": {"DONE": "Done", "HALT": "Cancelled"}}, "verdicts.HALT", "reserved"),
        ({"verdicts": {"DONE": None}}, "verdicts", "could ever ship"),
        ({"verdicts": {"DONE": "Dnoe"}}, "verdicts.DONE", "not a declared state"),
        (
            {"budgets": {"max_tokens_before_first_commit": 10**9}},
            "budgets.max_tokens_before_first_commit",
            "never trigger",
        ),
        ({"budgets": {"max_wall_time": "soon"}}, "budgets.max_wall_time", "duration"),
        ({"agent": {"kind": "command"}}, "agent.command", "required"),
        (
            {"agent": {"stall_timeout_s": 100, "turn_timeout_s": 50}},
            "agent.stall_timeout_s",
            "never fire",
        ),
        (
            {"concurrency": {"by_state": {"Doing": 2}}},
            "concurrency.by_state.Doing",
            "not an active state",
        ),
        ({"line": "no spaces allowed"}, "line", "pattern"),
    ],
)
def test_cross_key_rules(
    tmp_path: Path, overrides: dict[str, object], path: str, fragment: str
) -> None:
    found = {
        p.path: p
        for p in problems(write_workflow(tmp_path, deep_merge(base_front_matter("x"), overrides)))
    }
    assert path in found, found
    assert fragment in found[path].message, found[path]


def test_suggestion_for_a_misspelt_state(tmp_path: Path) -> None:
    found = {
        p.path: p
        for p in problems(
            write_workflow(
                tmp_path, deep_merge(base_front_matter("x"), {"verdicts": {"DONE": "Dnoe"}})
            )
        )
    }
    assert found["verdicts.DONE"].hint == "did you mean 'Done'?"


def test_secrets_must_be_references(tmp_path: Path) -> None:
    front = base_front_matter("x")
    front["tracker"] = {
        **front["tracker"],
        "kind": "github",
        "repo": "acme/widgets",
        "api_key": "ghp_literal_token_value",
    }
    del front["tracker"]["board"]
    found = {p.path: p for p in problems(write_workflow(tmp_path, front))}
    assert "never literal" in found["tracker.api_key"].message
    assert "ghp_literal_token_value" not in str(found)


@pytest.mark.parametrize(
    "repo",
    [
        "https://x-access-token:ghp_LiteralInUrl0123@github.com/acme/widgets.git",
        "https://ghp_LiteralInUrl0123@github.com/acme/widgets.git",
        "ssh://git:ghp_LiteralInUrl0123@github.com/acme/widgets.git",
    ],
)
def test_a_credential_in_the_repository_url_is_refused(tmp_path: Path, repo: str) -> None:
    front = deep_merge(base_front_matter("x"), {"workspace": {"repo": repo}})
    found = {p.path: p for p in problems(write_workflow(tmp_path, front))}
    assert "carries a credential" in found["workspace.repo"].message
    assert "ghp_LiteralInUrl0123" not in str(found)


@pytest.mark.parametrize(
    "repo", ["ssh://git@github.com/acme/widgets.git", "https://github.com/acme/widgets.git"]
)
def test_a_repository_url_without_a_credential_is_fine(tmp_path: Path, repo: str) -> None:
    front = deep_merge(base_front_matter("x"), {"workspace": {"repo": repo}})
    assert load_workflow(write_workflow(tmp_path, front)).config.workspace.repo == repo


def test_literal_secrets_in_agent_env_are_refused(tmp_path: Path) -> None:
    env = {
        "OPENAI_API_KEY": "sk-literal-0123456789",
        "GH_TOKEN": "ghp_literal_0123456789",
        "DB_PASSWORD": "hunter2hunter2",
        "ANTHROPIC_API_KEY": "$ANTHROPIC_API_KEY",  # a reference: fine
        "MODEL": "gpt-5",  # not a secret's name: fine
    }
    front = deep_merge(base_front_matter("x"), {"agent": {"env": env}})
    found = {p.path: p for p in problems(write_workflow(tmp_path, front))}
    assert set(found) == {"agent.env.OPENAI_API_KEY", "agent.env.GH_TOKEN", "agent.env.DB_PASSWORD"}
    assert (
        found["agent.env.GH_TOKEN"].hint
        == "set it in the worker's environment and write GH_TOKEN: $GH_TOKEN"
    )
    for literal in ("sk-literal-0123456789", "ghp_literal_0123456789", "hunter2hunter2"):
        assert literal not in str(found)


def test_paths_resolve_against_the_file_and_references_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    front = deep_merge(
        base_front_matter("x"),
        {"workspace": {"root": "~/ws", "repo": "$REPO_PATH"}, "tracker": {"board": "b"}},
    )
    loaded = load_workflow(write_workflow(tmp_path, front))
    assert loaded.config.workspace.root == str(tmp_path / "home" / "ws")
    assert loaded.config.workspace.repo == "$REPO_PATH"  # resolved in activities only
    assert loaded.config.tracker.board == str(tmp_path / "b")  # type: ignore[union-attr]


def test_git_urls_are_not_paths(tmp_path: Path) -> None:
    front = deep_merge(
        base_front_matter("x"), {"workspace": {"repo": "git@github.com:acme/widgets.git"}}
    )
    assert (
        load_workflow(write_workflow(tmp_path, front)).config.workspace.repo
        == "git@github.com:acme/widgets.git"
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("Do {{ issue.nope }}", "template_render_error (line"),
        ("Do {{ issue.title | shout }}", "unknown filter"),
        ("Do {% if issue.title %}", "template_parse_error"),
        ("Hi {{ who }}", "undefined"),
    ],
)
def test_the_template_is_strict(tmp_path: Path, body: str, fragment: str) -> None:
    found = problems(write_workflow(tmp_path, base_front_matter("x"), body=body))
    assert [p.path for p in found] == ["(prompt)"]
    assert fragment in found[0].message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("no front matter at all\n", "no YAML front matter"),
        ("---\nline: x\n", "never closed"),
        ("---\n- a\n- b\n---\nbody\n", "not_a_map"),
        ("---\nline: [unclosed\n---\nbody\n", "workflow_parse_error"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "WORKFLOW.md"
    path.write_text(text)
    found = problems(path)
    assert fragment in found[0].message


def test_missing_file(tmp_path: Path) -> None:
    found = problems(tmp_path / "absent.md")
    assert "missing_workflow_file" in found[0].message


# --------------------------------------------------------------------------------------------
# Bad input never crashes: typed errors only
# --------------------------------------------------------------------------------------------

yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    overrides=st.dictionaries(
        st.sampled_from(
            [
                "line",
                "tracker",
                "workspace",
                "hooks",
                "agent",
                "verdicts",
                "budgets",
                "polling",
                "extra",
            ]
        ),
        yaml_values,
        max_size=4,
    )
)
def test_any_front_matter_gives_a_config_or_typed_problems(overrides: dict[str, object]) -> None:
    front = {**base_front_matter("x"), **overrides}
    text = "---\n" + yaml.safe_dump(front) + "---\nDo {{ issue.title }}\n"
    try:
        parse_workflow(text.encode(), Path("/nonexistent/WORKFLOW.md"))
    except WorkflowFileError as error:
        assert error.problems and all(p.path and p.message for p in error.problems)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_give_typed_problems(raw: bytes) -> None:
    try:
        parse_workflow(raw, Path("/nonexistent/WORKFLOW.md"))
    except WorkflowFileError as error:
        assert error.problems
