"""Workspace keys and paths: sanitised, branch-safe, collision-free, never outside the root."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activities.git.gitops import branch_ref_ok
from jidoka.keys import (
    InvalidIdentifierError,
    WorkspaceEscapeError,
    workspace_key,
    workspace_path,
)

SAFE = re.compile(r"^[A-Za-z0-9._-]+$")

identifiers = st.one_of(
    st.text(min_size=1, max_size=200),
    st.sampled_from(
        [
            "../x",
            "/",
            "..",
            ".",
            "a/../../b",
            "ABC-1",
            "ABC-1.lock",
            "-rf",
            "日本語-1",
            "x" * 10_000,
        ]
    ),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=50),
)


@settings(max_examples=500, deadline=None)
@given(identifiers)
def test_keys_are_safe_and_stay_under_the_root(identifier: str) -> None:
    root = "/tmp/jidoka-root-for-keys"
    try:
        key = workspace_key(identifier)
    except InvalidIdentifierError:
        assert not identifier.strip()
        return
    assert SAFE.match(key)
    assert key not in (".", "..") and not key.startswith((".", "-"))
    assert len(key) <= 64 + 9
    assert branch_ref_ok(f"jidoka/{key}")
    path = workspace_path(root, key)
    assert os.path.dirname(path) == os.path.realpath(root)
    assert workspace_key(identifier) == key  # stable


def test_clean_identifiers_are_kept_and_changed_ones_get_a_hash() -> None:
    assert workspace_key("ABC-123") == "ABC-123"
    assert workspace_key("A/B") != workspace_key("A_B")
    assert workspace_key("A/B").startswith("A_B-")
    assert workspace_key("../x").startswith("___x-")


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_distinct_identifiers_never_share_a_workspace(a: str, b: str) -> None:
    if a == b or not a.strip() or not b.strip():
        return
    assert workspace_key(a) != workspace_key(b)


@pytest.mark.parametrize("identifier", ["", "   ", "\t\n"])
def test_blank_identifiers_are_typed_errors(identifier: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        workspace_key(identifier)


def test_a_symlink_planted_in_the_root_cannot_escape(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "ABC-1").symlink_to(outside)
    with pytest.raises(WorkspaceEscapeError):
        workspace_path(str(root), "ABC-1")


@pytest.mark.parametrize("key", ["", ".", "..", "a/b"])
def test_invalid_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(WorkspaceEscapeError):
        workspace_path(str(tmp_path), key)
