"""The after-test proof check (``conftest.every_ship_is_proven``) can fail: a "shipped" comment
without commits, or naming a tip that exists nowhere, is reported; a real ship is not."""

from __future__ import annotations

from pathlib import Path

from tests.support import linekit
from tests.support.git import run_git
from tests.support.linekit import make_line


def claim(base: str, tip: str) -> str:
    return (
        "\n## Comments\n\n**Jidoka: shipped** → Done\n\n"
        f"- branch `jidoka/P-1`: 1 commit(s) beyond `{base[:12]}`, tip `{tip[:12]}`\n"
    )


def test_the_proof_check_reports_claims_without_commits_and_accepts_real_ones(
    tmp_path: Path,
) -> None:
    kit = make_line(tmp_path)
    linekit.KITS.remove(kit)  # this test plants false claims on purpose
    card = kit.add_issue("P-1", "ship", state="Done")
    base = run_git(kit.origin, "rev-parse", "HEAD")

    card.write_text(card.read_text() + claim(base, base))
    [empty] = linekit.unproven_ships(kit)
    assert "0 commit(s)" in empty

    card.write_text(card.read_text() + claim(base, "deadbeef" * 5))
    assert any("exists nowhere" in p for p in linekit.unproven_ships(kit))

    run_git(kit.origin, "checkout", "-q", "-b", "jidoka/P-1")
    (kit.origin / "feature.py").write_text("VALUE = 1\n")
    run_git(kit.origin, "add", "feature.py")
    run_git(kit.origin, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "real")
    tip = run_git(kit.origin, "rev-parse", "HEAD")
    card.write_text(kit.add_issue("P-1", "ship", state="Done").read_text() + claim(base, tip))
    assert linekit.unproven_ships(kit) == []
