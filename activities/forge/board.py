# pyright: strict
"""The local board as the review loop's forge: on a board with no forge behind it, the change
request is the issue file itself, and review is a person's edit of it.

A shipped issue waits in ``review.state``. A person reviews the work on its branch, then
either moves the issue to the done state (approval and merge in one: the board merges
nothing, it only closes the loop), to a terminal state (closed unmerged), or back to an
active state, with comments under ``## Comments`` saying what to fix. :meth:`BoardForge.read`
turns that into the :class:`~jidoka.review.ChangeRequest` the policy
(:func:`jidoka.review.next_step`) judges, like any forge's snapshot. The board has no commits
and no checks of its own: the head is always the one Jidoka shipped, and no check is ever
reported.

Everything in the file is a person's text: bodies are bounded and cleaned before they become
a model, as the GitHub forge bounds a review comment.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.local import BoardComment, LocalBoard
from jidoka.config import LocalTrackerConfig, ReviewConfig, TrackerStates
from jidoka.policy import in_states, norm_state
from jidoka.review import ChangeRequest, RequestState, Review, ReviewComment, ReviewVerdict

BOARD_REVIEWER = "board"
"""Who requested changes when no person's comment since the ship names anyone."""
SHIP_MARKER_PREFIX = "ship-"
"""Markers of the comments the line writes when it ships (``ship-<attempt>``)."""
MAX_COMMENTS = 200
"""The latest ones: older comments were sent to the agent already, or are stale."""
COMMENT_CHARS = 2_000
NAME_CHARS = 200

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters other than tab and newline."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _clean(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text`` (its head), control characters replaced."""
    cleaned = _CONTROL.sub("\ufffd", text[: limit + 1])
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "\u2026"


def _is_ship_marker(marker: str) -> bool:
    """The ship comment's marker is its write key, ``<workflow>/<run>:ship-<attempt>``."""
    return marker.rsplit(":", 1)[-1].startswith(SHIP_MARKER_PREFIX)


def since_ship(comments: Sequence[BoardComment]) -> list[BoardComment]:
    """People's comments (no marker) after the line's FIRST ship comment; none when it never
    shipped. The first, not the latest: a comment written while a rework round ran (before
    the next ship) is still feedback, and the ledger never sends one twice (by its id)."""
    first = next(
        (
            position
            for position, comment in enumerate(comments)
            if comment.marker is not None and _is_ship_marker(comment.marker)
        ),
        None,
    )
    if first is None:
        return []
    return [comment for comment in comments[first + 1 :] if comment.marker is None]


def comment_ids(comments: Sequence[BoardComment]) -> dict[int, str]:
    """A stable id per comment (by its index): a hash of its stamp, author and body, and of
    how many identical comments come before it, so that two identical comments differ. Not
    of its position: a person deleting an older comment must not make every later one look
    new (and be sent to the agent again)."""
    seen: dict[tuple[str, str, str], int] = {}
    ids: dict[int, str] = {}
    for comment in comments:
        key = (comment.stamp, comment.author, comment.body)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        text = f"{occurrence}\0{comment.stamp}\0{comment.author}\0{comment.body}"
        digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]
        ids[comment.index] = f"board:{digest}"
    return ids


class BoardForge:
    """The review loop's reading of a local board issue (see the module docstring)."""

    def __init__(
        self,
        board: LocalBoard,
        tracker: TrackerStates,
        review: ReviewConfig,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._board = board
        self._tracker = tracker
        self._review = review
        self._clock = clock

    @classmethod
    def from_config(
        cls,
        tracker: LocalTrackerConfig,
        review: ReviewConfig,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> BoardForge:
        return cls(LocalBoard(tracker), tracker, review, clock=clock)

    def __repr__(self) -> str:
        return f"BoardForge(review_state={self._review.state!r})"

    async def read(self, issue_id: str, *, shipped_head: str, url: str) -> ChangeRequest:
        """The issue file as one snapshot of its change request. A missing file (or an id
        that names none on the board) reads as GONE; any other tracker error propagates."""
        try:
            issue, comments = await self._board.read_comments(issue_id)
        except TrackerError as exc:
            if exc.category is not TrackerErrorCategory.NOT_FOUND:
                raise
            return ChangeRequest(url=url, state=RequestState.GONE, head_sha=shipped_head)
        state = issue.state
        tracker = self._tracker
        if norm_state(state) == norm_state(tracker.done_state):
            return ChangeRequest(url=url, state=RequestState.MERGED, head_sha=shipped_head)
        if in_states(state, tracker.terminal_states):
            return ChangeRequest(url=url, state=RequestState.CLOSED, head_sha=shipped_head)
        if norm_state(state) != norm_state(self._review.state) and in_states(
            state, tracker.active_states
        ):
            return self._sent_back(comments, shipped_head=shipped_head, url=url)
        # In review, paused, in the backlog or in a state the tracker does not declare: no
        # verdict yet, and the policy waits for one. A board has no merge conflicts, so the
        # wait says what it is for: a person's review.
        return ChangeRequest(
            url=url, state=RequestState.OPEN, head_sha=shipped_head, mergeable=True
        )

    def _sent_back(
        self, comments: Sequence[BoardComment], *, shipped_head: str, url: str
    ) -> ChangeRequest:
        """A person moved the issue back to an active state: changes requested, by the author
        of the latest comment since the ship, with those comments as what to fix."""
        ids = comment_ids(comments)
        recent = since_ship(comments)[-MAX_COMMENTS:]
        reviewer = _clean(recent[-1].author, NAME_CHARS) if recent else BOARD_REVIEWER
        return ChangeRequest(
            url=url,
            state=RequestState.OPEN,
            head_sha=shipped_head,
            reviews=[
                Review(
                    author=reviewer,
                    verdict=ReviewVerdict.CHANGES_REQUESTED,
                    commit_sha=shipped_head,
                    submitted_at=self._clock(),
                )
            ],
            comments=[
                ReviewComment(
                    id=ids[comment.index],
                    author=_clean(comment.author, NAME_CHARS),
                    body=_clean(comment.body, COMMENT_CHARS),
                )
                for comment in recent
            ],
        )
