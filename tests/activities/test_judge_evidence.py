"""The judge's evidence on real repositories and folders: which protected paths a net diff
touches (read in the sealed repository, whatever the agent's tricks), the report path cleared
before ``verify`` writes it, and the base's report cache."""

from __future__ import annotations

import os
from pathlib import Path

from activities.evidence import closing_references, protected_changes
from activities.git.sealed import MESSAGE_BYTES, SealedRepo
from activities.test_baseline import cache_path, cached, clear_report, load_report, store
from jidoka import closing
from jidoka.outcomes import TestStatus
from tests.support.git import run_git

GLOBS = ["tests/**", "pyproject.toml", "conftest.py"]


def workspace_with_branch(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "ws"
    repo.mkdir()
    run_git(repo, "init", "-q", "-b", "main")
    run_git(repo, "config", "user.email", "t@example.com")
    run_git(repo, "config", "user.name", "t")
    for name, text in {
        "calc.py": "x = 1\n",
        "tests/test_a.py": "def test_a():\n    pass\n",
        "tests/test_b.py": "def test_b():\n    pass\n",
        "tests/helpers.py": "H = 1\n",
        "pyproject.toml": "[tool.pytest.ini_options]\n",
    }.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "base")
    base = run_git(repo, "rev-parse", "HEAD")
    run_git(repo, "checkout", "-q", "-b", "work")
    return repo, base


def test_every_kind_of_change_to_a_protected_path_is_seen(tmp_path: Path) -> None:
    repo, base = workspace_with_branch(tmp_path)
    (repo / "tests/test_a.py").write_text("def test_a():\n    assert 1 + 1 == 2\n")  # edited
    run_git(repo, "rm", "-q", "pyproject.toml")  # deleted
    run_git(repo, "mv", "tests/helpers.py", "helpers.py")  # moved out of tests/
    os.chmod(repo / "tests/test_b.py", 0o755)  # a mode change
    (repo / "sub").mkdir()
    (repo / "sub/conftest.py").write_text("import pytest\n")  # a new conftest anywhere
    (repo / "calc.py").write_text("x = 2\n")  # not protected
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "work")
    sealed = SealedRepo(tmp_path / "sealed.git")
    sealed.ensure()
    head = sealed.seal_workspace(str(repo), "work")
    assert head is not None

    found = {c.path: c for c in protected_changes(sealed, base, head, GLOBS)}

    assert sorted(found) == [
        "pyproject.toml",
        "sub/conftest.py",
        "tests/helpers.py",
        "tests/test_a.py",
        "tests/test_b.py",
    ]
    assert found["pyproject.toml"].blob == "" and found["tests/helpers.py"].blob == ""
    assert found["tests/test_a.py"].blob == run_git(repo, "rev-parse", "work:tests/test_a.py")
    assert found["sub/conftest.py"].glob == "conftest.py"


def test_a_change_undone_later_on_the_branch_is_no_change(tmp_path: Path) -> None:
    repo, base = workspace_with_branch(tmp_path)
    run_git(repo, "rm", "-q", "tests/test_a.py")
    run_git(repo, "commit", "-q", "-m", "delete")
    run_git(repo, "revert", "--no-edit", "HEAD")
    (repo / "calc.py").write_text("x = 2\n")
    run_git(repo, "commit", "-q", "-am", "work")
    sealed = SealedRepo(tmp_path / "sealed.git")
    sealed.ensure()
    head = sealed.seal_workspace(str(repo), "work")
    assert head is not None
    assert protected_changes(sealed, base, head, GLOBS) == []


def sealed_work(tmp_path: Path, *messages: str) -> tuple[SealedRepo, str, str]:
    """The work branch with one commit per message, sealed."""
    repo, base = workspace_with_branch(tmp_path)
    for n, message in enumerate(messages):
        (repo / "calc.py").write_text(f"x = {n + 2}\n")
        (tmp_path / "message.txt").write_text(message)
        run_git(repo, "commit", "-q", "-a", "-F", str(tmp_path / "message.txt"))
    sealed = SealedRepo(tmp_path / "sealed.git")
    sealed.ensure()
    head = sealed.seal_workspace(str(repo), "work")
    assert head is not None
    return sealed, base, head


def test_closing_references_are_read_in_every_commit_message_of_the_work(
    tmp_path: Path,
) -> None:
    sealed, base, head = sealed_work(
        tmp_path, "first\n\nFixes #1", "middle, no keyword", "last\n\nCloses acme/app#2"
    )
    assert closing_references(sealed, base, head) == ["acme/app#2", "#1"]


def test_messages_too_many_or_too_long_to_read_whole_are_a_finding(tmp_path: Path) -> None:
    """A reference could hide past the cut: more commits, or more bytes, than are read is held
    like a reference, never read as "nothing found"."""
    sealed, base, head = sealed_work(tmp_path, "one", "two", "three")
    assert sealed.commit_messages(base, head, max_commits=3) is not None
    assert sealed.commit_messages(base, head, max_commits=2) is None
    assert sealed.commit_messages(base, head, max_bytes=10) is None
    (tmp_path / "long").mkdir()
    padded, base2, head2 = sealed_work(
        tmp_path / "long", "x" * (MESSAGE_BYTES + 10) + "\n\nFixes #9"
    )
    assert closing_references(padded, base2, head2) == [closing.UNREAD]


def test_what_sits_at_the_report_path_is_cleared_before_verify(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "reports").mkdir(parents=True)
    forged = checkout / "reports" / "junit.xml"
    forged.write_text('<testsuite><testcase classname="t" name="forged"/></testsuite>')
    clear_report(checkout, "reports/junit.xml")
    assert not forged.exists()
    # A link is removed, not followed; a folder in its place too.
    outside = tmp_path / "outside.xml"
    outside.write_text("keep me")
    forged.symlink_to(outside)
    clear_report(checkout, "reports/junit.xml")
    assert not os.path.lexists(forged) and outside.read_text() == "keep me"
    forged.mkdir()
    (forged / "x").write_text("")
    clear_report(checkout, "reports/junit.xml")
    assert not forged.exists()
    clear_report(checkout, "reports/junit.xml")  # nothing there: nothing to do


def test_a_linked_folder_on_the_report_path_is_left_alone_and_the_report_refused(
    tmp_path: Path,
) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "junit.xml").write_text(
        '<testsuite><testcase classname="t" name="a"/></testsuite>'
    )
    (checkout / "reports").symlink_to(elsewhere)
    clear_report(checkout, "reports/junit.xml")
    assert (elsewhere / "junit.xml").exists()  # never deleted through the link
    tests, problem = load_report(checkout, "reports/junit.xml")
    assert tests is None and problem is not None


def test_the_base_report_cache_is_keyed_and_rebuilt_when_unreadable(tmp_path: Path) -> None:
    path = cache_path(tmp_path, "a" * 40, "pytest", "r.xml")
    assert path != cache_path(tmp_path, "a" * 40, "pytest -k x", "r.xml")
    assert path != cache_path(tmp_path, "b" * 40, "pytest", "r.xml")
    assert cached(path) is None
    store(path, {"t::a": TestStatus.PASSED, "t::b": TestStatus.FAILED})
    assert cached(path) == {"t::a": TestStatus.PASSED, "t::b": TestStatus.FAILED}
    path.write_text('{"tests": {"t::a": "exploded"}}')
    assert cached(path) is None
    path.write_text("not json")
    assert cached(path) is None
