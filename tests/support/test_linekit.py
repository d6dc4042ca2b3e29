"""The after-test proof check (``conftest.every_ship_is_proven``) can fail: a "shipped" comment
without commits, naming a tip that exists nowhere, verified at another commit, or pushed to a
branch whose tip is something else, is reported; a real ship is not."""

from __future__ import annotations

from pathlib import Path

from tests.support import linekit
from tests.support.git import run_git
from tests.support.linekit import make_line


def claim(base: str, tip: str, *, verified: str | None = None, pushed: bool = False) -> str:
    where = f", pushed to {Path('origin')}" if pushed else ""
    verify = (
        f"passed at `{verified}` in a fresh checkout (`make test`)"
        if verified
        else ("not configured (hooks.verify)")
    )
    return (
        "\n## Comments\n\n**Jidoka: shipped** → Done\n\n"
        f"- branch `jidoka/P-1`: 1 commit(s) beyond `{base}`, tip `{tip}`{where}\n"
        "- content changed outside .jidoka/: 1 file(s), +1 -0\n"
        f"- verify: {verify}\n"
    )


def test_the_proof_check_reports_claims_without_commits_and_accepts_real_ones(
    tmp_path: Path,
) -> None:
    kit = make_line(tmp_path)
    linekit.KITS.remove(kit)  # this test plants false claims on purpose
    card = kit.add_issue("P-1", "ship", state="Done")
    fresh = card.read_text()
    base = run_git(kit.origin, "rev-parse", "HEAD")

    card.write_text(fresh + claim(base, base))
    [empty] = linekit.unproven_ships(kit)
    assert "0 commit(s)" in empty

    card.write_text(fresh + claim(base, "deadbeef" * 5))
    assert any("exists nowhere" in p for p in linekit.unproven_ships(kit))

    run_git(kit.origin, "checkout", "-q", "-b", "jidoka/P-1")
    commit = ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m"]
    (kit.origin / "feature.py").write_text("VALUE = 1\n")
    run_git(kit.origin, "add", "feature.py")
    run_git(kit.origin, *commit, "real")
    tip = run_git(kit.origin, "rev-parse", "HEAD")
    card.write_text(fresh + claim(base, tip, verified=tip, pushed=True))
    assert linekit.unproven_ships(kit) == []

    # Verified at one commit, shipped another.
    card.write_text(fresh + claim(base, tip, verified=base, pushed=True))
    assert any("verify passed at" in p for p in linekit.unproven_ships(kit))

    # Origin's branch moved on past the last claimed ship: what shipped is not what is there.
    (kit.origin / "feature.py").write_text("VALUE = 2\n")
    run_git(kit.origin, "add", "feature.py")
    run_git(kit.origin, *commit, "after the ship")
    card.write_text(fresh + claim(base, tip, verified=tip, pushed=True))
    assert any("but origin's jidoka/P-1 is" in p for p in linekit.unproven_ships(kit))
    # An earlier ship of the branch may be behind its tip; the last one may not.
    later = run_git(kit.origin, "rev-parse", "HEAD")
    both = claim(base, tip, verified=tip, pushed=True) + claim(base, later, pushed=True)
    card.write_text(fresh + both)
    assert linekit.unproven_ships(kit) == []
