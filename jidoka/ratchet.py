"""The test ratchet: the head's tests may grow and get greener, never quietly shrink.

``verify`` passing proves little when the agent made it pass by deleting the failing test or
marking it skipped. Jidoka reads the JUnit report ``verify`` wrote at the head and the one it
wrote at the base (run once per base commit), and compares them here. Pure: the activity that
ran ``verify`` calls :func:`compare`; policy turns :func:`findings` into an outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from jidoka.models import TEST_SAMPLE_LIMIT, TestComparison, TestSample
from jidoka.outcomes import TestStatus

Report = Mapping[str, TestStatus]


def _sample(ids: Iterable[str]) -> TestSample:
    ordered = sorted(ids)
    return TestSample(count=len(ordered), ids=ordered[:TEST_SAMPLE_LIMIT])


def compare(
    base: Report | None,
    head: Report | None,
    *,
    base_sha: str,
    head_sha: str,
    base_problem: str | None = None,
    head_problem: str | None = None,
) -> TestComparison:
    """Counts and samples of what changed between two reports (None: that report is missing,
    and its problem says why)."""
    if base is None and base_problem is None:
        base_problem = "no report"
    if head is None and head_problem is None:
        head_problem = "no report"
    comparison = TestComparison(
        base_sha=base_sha,
        head_sha=head_sha,
        base_problem=base_problem,
        head_problem=head_problem,
        base_total=len(base or {}),
        head_total=len(head or {}),
    )
    if head is None:
        return comparison
    counts = {status: 0 for status in TestStatus}
    for status in head.values():
        counts[status] += 1
    comparison.head_counts = counts
    comparison.head_failed = _sample(i for i, s in head.items() if s is TestStatus.FAILED)
    if base is None:
        return comparison
    comparison.added = _sample(head.keys() - base.keys())
    comparison.removed = _sample(base.keys() - head.keys())
    comparison.failing_removed = _sample(
        i for i in base.keys() - head.keys() if base[i] is TestStatus.FAILED
    )
    both = base.keys() & head.keys()
    comparison.newly_skipped = _sample(
        i for i in both if head[i] is TestStatus.SKIPPED and base[i] is not TestStatus.SKIPPED
    )
    comparison.newly_passing = _sample(
        i for i in both if base[i] is TestStatus.FAILED and head[i] is TestStatus.PASSED
    )
    return comparison


def _listed(what: str, sample: TestSample) -> list[str]:
    lines = [f"{what}: {test_id}" for test_id in sample.ids]
    if sample.count > len(sample.ids):
        lines.append(f"{what}: {sample.count - len(sample.ids)} more")
    return lines


def findings(comparison: TestComparison | None) -> list[str]:
    """One line per way the head's tests are weaker than the base's; empty: none.

    A head report that cannot be read is a finding (``verify`` passed, but the report that
    shows what it ran is gone); a base report that cannot be read is not: nothing to compare
    against is said in the ship comment instead.
    """
    if comparison is None:
        return []
    if comparison.head_problem is not None:
        return [f"no readable test report at the head: {comparison.head_problem}"]
    found: list[str] = []
    if comparison.head_failed.count:
        found.append(
            f"{comparison.head_failed.count} test(s) failed at the head, yet verify passed"
        )
    if comparison.base_problem is not None:
        return found
    if comparison.head_total < comparison.base_total:
        found.append(
            f"fewer tests: {comparison.base_total} on the base, {comparison.head_total} at the head"
        )
    found += _listed("newly skipped", comparison.newly_skipped)
    found += _listed("failed on the base and removed", comparison.failing_removed)
    return found


def summary(comparison: TestComparison) -> str:
    """One line for the ship comment and the pull request."""
    if comparison.head_problem is not None:
        return f"no readable report at the head ({comparison.head_problem})"
    counts = comparison.head_counts
    head = (
        f"{comparison.head_total} at the head ({counts.get(TestStatus.PASSED, 0)} passed, "
        f"{counts.get(TestStatus.FAILED, 0)} failed, {counts.get(TestStatus.SKIPPED, 0)} skipped)"
    )
    if comparison.base_problem is not None:
        return f"{head}; the base's report could not be read ({comparison.base_problem})"
    return (
        f"{head}, {comparison.base_total} on the base: +{comparison.added.count} added, "
        f"-{comparison.removed.count} removed, {comparison.newly_skipped.count} newly skipped, "
        f"{comparison.newly_passing.count} newly passing"
    )
