"""The judge the agent must not weaken: which changes of the judge a person has allowed.

Two things can make ``verify`` pass without the work being right: a change to what judges it
(the tests, the test runner's settings, CI, ``judge.protected_paths``) and tests that quietly
disappear or get skipped (the ratchet, :mod:`jidoka.ratchet`). Neither is forbidden: both are
held for a person. A protected path is allowed when the issue carries an ``allow:<glob>`` label
matching it (set by whoever triages the issue, before the agent starts) or when an operator
accepted exactly that content with a root cause (``decide`` accept); a ratchet finding only by
an operator's acceptance. Pure, like :mod:`jidoka.policy`.
"""

from __future__ import annotations

from collections.abc import Sequence

from jidoka import closing, ratchet
from jidoka.config import WorkflowConfig
from jidoka.models import Consent, Evidence, Issue, JudgeFindings, PathChange
from jidoka.paths import matches


def allowed_globs(issue: Issue | None, config: WorkflowConfig) -> list[str]:
    """The globs an issue's ``allow:`` labels name. Tracker labels are lowercase, so these
    match without regard to case."""
    if issue is None:
        return []
    prefix = config.judge.allow_label_prefix.lower()
    return [
        label[len(prefix) :].strip()
        for label in issue.labels
        if label.lower().startswith(prefix) and label[len(prefix) :].strip()
    ]


def allowed_by_label(change: PathChange, globs: Sequence[str]) -> str | None:
    for glob in globs:
        if matches(change.path, glob, ignore_case=True):
            return glob
    return None


def accepted_by(change: PathChange, consents: Sequence[Consent]) -> Consent | None:
    """The consent that covers this very content of the path (a later edit needs a new one)."""
    for consent in consents:
        if change in consent.paths:
            return consent
    return None


def findings(
    evidence: Evidence, config: WorkflowConfig, issue: Issue | None, consents: Sequence[Consent]
) -> JudgeFindings:
    """What in this attempt weakens the judge and nobody has allowed. Before ``verify`` ran it
    can only name protected paths; after, the ratchet's findings too."""
    globs = allowed_globs(issue, config)
    git = evidence.git
    protected = [
        change
        for change in git.protected
        if allowed_by_label(change, globs) is None and accepted_by(change, consents) is None
    ]
    unlisted = max(git.protected_count - len(git.protected), 0)
    tests = ratchet.findings(evidence.verify.tests if evidence.verify is not None else None)
    accepted_tests = {finding for consent in consents for finding in consent.tests}
    accepted_closing = {ref for consent in consents for ref in consent.closing}
    identifier, url = (issue.identifier, issue.url) if issue is not None else (None, None)
    return JudgeFindings(
        protected=protected,
        protected_more=unlisted,
        tests=[finding for finding in tests if finding not in accepted_tests],
        closing=[
            ref
            for ref in git.closing
            if not closing.refers_to(ref, identifier, url) and ref not in accepted_closing
        ],
    )


def describe(found: JudgeFindings) -> str:
    """The halt's reason: a sentence per kind, then one ``- `` line per finding (``jidoka
    why`` lists those lines)."""
    lines: list[str] = []
    if found.protected or found.protected_more:
        lines.append("the work changes protected paths without a person's consent:")
        lines += [f"- {c.path} ({c.glob})" for c in found.protected[:FINDINGS_LISTED]]
        more = len(found.protected) - FINDINGS_LISTED + found.protected_more
        if more > 0:
            lines.append(f"- and {more} more")
    if found.tests:
        lines.append("the tests got weaker:")
        lines += [f"- {finding}" for finding in found.tests[:FINDINGS_LISTED]]
        if len(found.tests) > FINDINGS_LISTED:
            lines.append(f"- and {len(found.tests) - FINDINGS_LISTED} more")
    if found.closing:
        lines.append(
            "the commit messages close other issues once the work lands on the default "
            "branch (a closing keyword such as 'Fixes'):"
        )
        lines += [f"- {ref}" for ref in found.closing[:FINDINGS_LISTED]]
    return "\n".join(lines)


FINDINGS_LISTED = 20


def send_back_guidance(found: JudgeFindings, note: str | None) -> str:
    """What the agent is told when a person sends a judge stop back to it."""
    lines = ["A person reviewed your previous attempt and sent it back."]
    if note:
        lines += ["", "Their note:", note]
    if found.protected or found.protected_more:
        lines += [
            "",
            "Your work changed files that judge it, which you may not change without consent. "
            "Unless the note above says otherwise, restore them as they are on the base:",
            *(f"- {c.path}" for c in found.protected),
        ]
    if found.tests:
        lines += [
            "",
            "The project's tests got weaker; keep every test of the base running and fix the "
            "code instead:",
            *(f"- {finding}" for finding in found.tests),
        ]
    if found.closing:
        lines += [
            "",
            "Your commit messages would close other issues when the work lands (a closing "
            "keyword such as 'Fixes', 'Closes' or 'Resolves' before an issue reference). "
            "Reword those commits (for example with an interactive rebase onto the base) so "
            "that they name no other issue that way:",
            *(f"- {ref}" for ref in found.closing),
        ]
    return "\n".join(lines)


def shipped_protected(
    evidence: Evidence, config: WorkflowConfig, issue: Issue | None, consents: Sequence[Consent]
) -> list[str]:
    """Each protected path in a shipped diff, with who allowed it (for the ship comment)."""
    globs = allowed_globs(issue, config)
    lines: list[str] = []
    for change in evidence.git.protected:
        label = allowed_by_label(change, globs)
        consent = accepted_by(change, consents)
        if consent is not None:
            who = f"accepted by {consent.operator}: {consent.root_cause}"
        elif label is not None:
            who = f"allowed by the issue's label {config.judge.allow_label_prefix}{label}"
        else:  # not reachable for a ship: findings() would have held it
            who = "not allowed"
        lines.append(f"{change.path} ({who})")
    return lines


def config_warnings(config: WorkflowConfig) -> list[str]:
    """What leaves the judge open to the agent: shown by ``jidoka check``."""
    if config.hooks.verify is None:
        return []
    warnings: list[str] = []
    if not config.judge.protected_paths:
        warnings.append(
            "hooks.verify is set but judge.protected_paths is empty - an agent can make "
            "verify pass by editing the tests, the test runner's settings or CI "
            "(jidoka setup proposes paths)"
        )
    if config.judge.test_report is None:
        warnings.append(
            "hooks.verify is set but judge.test_report is not - nobody notices an agent "
            "deleting or skipping the failing test (jidoka setup proposes a report path)"
        )
    return warnings
