"""Labels as states, for trackers whose issues have two native states (GitHub, GitLab).

A line needs more states than *open* and *closed*, so an open issue's state is the state label
it carries (``tracker.state_labels``), or ``tracker.default_open_state`` when it carries none.
A closed issue's state comes from a closed-state label (GitLab), from GitHub's
``state_reason``, or else from the first closed state (GitLab, which has no close reason). Two
state labels of one group on one issue is a malformed record. Written once here; each adapter
says how its configuration maps (:meth:`StateMap.build`) and which words its API uses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from activities.tracker.base import MalformedRecordError
from activities.tracker.http import as_object

logger = logging.getLogger("jidoka.tracker.labels")


class Placement(StrEnum):
    """How a Jidoka state is represented on an issue."""

    LABELLED = "labelled"
    """Open, carrying the state's label."""
    OPEN_DEFAULT = "open_default"
    """Open, carrying no open-state label (``default_open_state``)."""
    CLOSED = "closed"
    """Closed: with a ``state_reason`` (GitHub), with the state's label when it has one
    (GitLab)."""


@dataclass(frozen=True)
class StatePlacement:
    state: str
    """As spelled in WORKFLOW.md: the tracker has no spelling of its own for it."""
    placement: Placement
    label: str | None = None
    """As configured (the trackers' label filters and writes are exact)."""
    reason: str | None = None
    """GitHub's ``state_reason`` of a closed state."""


@dataclass(frozen=True)
class StateMap:
    placements: dict[str, StatePlacement]
    """Case-folded state name -> placement."""
    open_by_label: dict[str, str]
    """Lowercase label -> open state."""
    closed_by_label: dict[str, str]
    """Lowercase label -> closed state."""
    closed_by_reason: dict[str, str]
    """``state_reason`` -> closed state."""
    default_open: str | None
    default_closed: str | None
    """The state of a closed issue with neither a closed-state label nor a known reason."""

    @classmethod
    def build(
        cls,
        *,
        state_labels: Mapping[str, str],
        default_open_state: str | None,
        closed_reasons: Mapping[str, str | None],
        default_closed: str | None = None,
    ) -> StateMap:
        """``closed_reasons``: every closed state, with its ``state_reason`` (None where the
        tracker has none); a closed state's label, if any, is in ``state_labels``."""
        placements: dict[str, StatePlacement] = {}
        open_by_label: dict[str, str] = {}
        closed_by_label: dict[str, str] = {}
        closed_by_reason: dict[str, str] = {}
        if default_open_state is not None:
            placements[default_open_state.casefold()] = StatePlacement(
                default_open_state, Placement.OPEN_DEFAULT
            )
        closed = {state.casefold() for state in closed_reasons}
        for state, label in state_labels.items():
            if state.casefold() in closed:
                closed_by_label[label.strip().lower()] = state
            else:
                placements[state.casefold()] = StatePlacement(state, Placement.LABELLED, label)
                open_by_label[label.strip().lower()] = state
        labels = {state.casefold(): label for state, label in state_labels.items()}
        for state, reason in closed_reasons.items():
            placements[state.casefold()] = StatePlacement(
                state, Placement.CLOSED, labels.get(state.casefold()), reason
            )
            if reason is not None:
                closed_by_reason[reason] = state
        return cls(
            placements,
            open_by_label,
            closed_by_label,
            closed_by_reason,
            default_open_state,
            default_closed,
        )

    def placement(self, state: str) -> StatePlacement | None:
        return self.placements.get(state.strip().casefold())

    def wanted(self, states: Iterable[str]) -> dict[str, StatePlacement]:
        """State name (as configured) -> placement, for the ``states`` that have one."""
        found: dict[str, StatePlacement] = {}
        for state in states:
            placement = self.placement(state)
            if placement is None:
                logger.debug("state %r has no label mapping: nothing can be in it", state)
            else:
                found[placement.state] = placement
        return found

    def is_state_label(self, label: str) -> bool:
        key = label.strip().lower()
        return key in self.open_by_label or key in self.closed_by_label

    def state_labels_in(self, labels: Iterable[str]) -> list[str]:
        """The state labels among ``labels``, of either group (lowercase in, lowercase out)."""
        return [label for label in labels if self.is_state_label(label)]

    def state_of(
        self, *, is_open: bool, labels: Sequence[str], reason: str | None = None
    ) -> str | None:
        """The state of an issue (``labels`` lowercase), None when it is in none of this
        line's states. Labels of the other group are ignored: closing an issue in the
        tracker's own UI leaves its labels on, and it must still read as closed."""
        by_label = self.open_by_label if is_open else self.closed_by_label
        found = sorted({label for label in labels if label in by_label})
        if len(found) > 1:
            group = "open" if is_open else "closed"
            raise MalformedRecordError(f"several {group}-state labels: {', '.join(found)}")
        if found:
            return by_label[found[0]]
        if is_open:
            return self.default_open
        if reason is not None and reason in self.closed_by_reason:
            return self.closed_by_reason[reason]
        return self.default_closed


@dataclass(frozen=True)
class Listing:
    """One listing of issues that finds every issue in some of the line's states."""

    state: str
    """The tracker's own ``state`` filter (GitHub ``open``, GitLab ``opened``; ``closed``)."""
    label: str | None
    max_pages: int
    truncate: bool
    """True: stop quietly at ``max_pages``; False: more pages than that is an error."""


def listings(
    wanted: Iterable[StatePlacement],
    *,
    open_filter: str,
    max_open_pages: int,
    max_closed_pages: int,
) -> list[Listing]:
    """The fewest listings that find every issue in the ``wanted`` states."""
    placements = list(wanted)
    kinds = {p.placement for p in placements}
    found: list[Listing] = []
    if Placement.OPEN_DEFAULT in kinds:
        # Unlabelled issues can only be found by listing every open issue; that listing
        # already holds the labelled ones too.
        found.append(Listing(open_filter, None, max_open_pages, truncate=False))
    else:
        found.extend(
            Listing(open_filter, p.label, max_open_pages, truncate=False)
            for p in placements
            if p.placement is Placement.LABELLED
        )
    if Placement.CLOSED in kinds:
        # Closed listings (startup cleanup) read the most recently updated issues only: a
        # whole closed history is unbounded, and older issues need no cleanup.
        found.append(Listing("closed", None, max_closed_pages, truncate=True))
    return found


def label_names(raw_labels: list[object]) -> list[str]:
    """Label names: plain strings, or objects with a ``name`` (GitHub always, GitLab when
    listed ``with_labels_details``); blanks and other values dropped."""
    names: list[str] = []
    for entry in raw_labels:
        obj = as_object(entry)
        name = obj.get("name") if obj is not None else entry
        if isinstance(name, str) and name.strip():
            names.append(name.strip())
    return names


def label_priority(labels: Sequence[str], priority_labels: Mapping[str, int]) -> int | None:
    """The most urgent priority among ``labels`` (lowercase), None when none is a priority
    label."""
    wanted = {label.strip().lower(): value for label, value in priority_labels.items()}
    values = [wanted[label] for label in labels if label in wanted]
    return min(values) if values else None
