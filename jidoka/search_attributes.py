"""Search attributes: what the Web UI filters on (README.md#the-web-ui). Registered by
``jidoka server``, the test fixtures and ``jidoka setup``. They are stored unencrypted: never
put a secret or a description here."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

LINE = SearchAttributeKey.for_keyword("JidokaLine")
ISSUE = SearchAttributeKey.for_keyword("JidokaIssue")
PHASE = SearchAttributeKey.for_keyword("JidokaPhase")
OUTCOME = SearchAttributeKey.for_keyword("JidokaOutcome")
HALTED = SearchAttributeKey.for_bool("JidokaHalted")
TOKENS = SearchAttributeKey.for_int("JidokaTokens")
CONFIG_INVALID = SearchAttributeKey.for_bool("JidokaConfigInvalid")
"""True while the last WORKFLOW.md reload failed (the last good config is still in use)."""

REVIEW_ROUNDS = SearchAttributeKey.for_int("JidokaReviewRounds")
"""Rework rounds sent after the ship (set once an issue enters review)."""

COST = SearchAttributeKey.for_float("JidokaCost")
"""Money spent by the attempts whose cost is known (set only on lines with ``pricing:``)."""

AnyKey = (
    SearchAttributeKey[str]
    | SearchAttributeKey[bool]
    | SearchAttributeKey[int]
    | SearchAttributeKey[float]
)

ALL: tuple[AnyKey, ...] = (
    LINE,
    ISSUE,
    PHASE,
    OUTCOME,
    HALTED,
    TOKENS,
    CONFIG_INVALID,
    REVIEW_ROUNDS,
    COST,
)
