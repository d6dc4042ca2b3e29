"""Linear adapter (GraphQL), scoped to one project (``tracker.project_slug`` = the project's
``slugId``) and optionally one team (``tracker.team_key``). Profile: docs/trackers.md.

Linear's workflow states are the line's states, by name: no mapping to configure. ``id`` is
Linear's issue UUID, ``identifier`` its key (``ENG-123``).

Each GraphQL document is one constant below, so that a drift of Linear's schema shows up in
one place and the tests can pin the exact fields and variable types the contract relies on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from urllib.parse import quote

import httpx

from activities.tracker.base import MalformedRecordError, TrackerError, TrackerErrorCategory
from activities.tracker.http import (
    ApiClient,
    Clock,
    ConditionalCache,
    RateLimitSnapshot,
    RetryPolicy,
    Sleep,
    as_list,
    as_object,
    clean_labels,
    non_empty_str,
    parse_epoch,
    parse_int,
    parse_timestamp,
    utc_now,
)
from activities.tracker.remote import RemoteTracker
from jidoka.config import LinearTrackerConfig
from jidoka.models import BlockerRef, Issue

logger = logging.getLogger("jidoka.tracker.linear")

PAGE_SIZE = 50
"""Issues per page of a listing."""
MAX_PAGES = 200
"""10,000 issues in the requested states: past that, the line's scope is too wide."""
LABELS_PER_ISSUE = 25
BLOCKERS_PER_ISSUE = 25
"""Nested connections carry an explicit ``first``: Linear multiplies a connection's cost by it
(default 50), and 50 issues with 50 labels and 50 relations each would exceed Linear's limit
of 10,000 complexity points per query."""
STATES_PER_TEAM = 250

# --------------------------------------------------------------------------------------------
# GraphQL documents
# --------------------------------------------------------------------------------------------

ISSUE_FIELDS = f"""
fragment JidokaIssue on Issue {{
  id
  identifier
  title
  description
  priority
  branchName
  url
  createdAt
  updatedAt
  state {{ name }}
  team {{ id key }}
  project {{ slugId }}
  labels(first: {LABELS_PER_ISSUE}) {{ nodes {{ name }} }}
  inverseRelations(first: {BLOCKERS_PER_ISSUE}) {{
    nodes {{ type issue {{ id identifier state {{ name }} }} }}
  }}
}}
"""

ISSUES_BY_STATES_QUERY = (
    """
query JidokaIssuesByStates(
  $projectSlug: String!
  $stateNames: [String!]!
  $first: Int!
  $after: String
) {
  issues(
    filter: { project: { slugId: { eq: $projectSlug } }, state: { name: { in: $stateNames } } }
    first: $first
    after: $after
  ) {
    nodes { ...JidokaIssue }
    pageInfo { hasNextPage endCursor }
  }
}
"""
    + ISSUE_FIELDS
)

ISSUES_BY_STATES_IN_TEAM_QUERY = (
    """
query JidokaIssuesByStatesInTeam(
  $projectSlug: String!
  $teamKey: String!
  $stateNames: [String!]!
  $first: Int!
  $after: String
) {
  issues(
    filter: {
      project: { slugId: { eq: $projectSlug } }
      team: { key: { eq: $teamKey } }
      state: { name: { in: $stateNames } }
    }
    first: $first
    after: $after
  ) {
    nodes { ...JidokaIssue }
    pageInfo { hasNextPage endCursor }
  }
}
"""
    + ISSUE_FIELDS
)

ISSUES_BY_IDS_QUERY = (
    """
query JidokaIssuesByIds($ids: [ID!]!, $first: Int!, $after: String) {
  issues(filter: { id: { in: $ids } }, first: $first, after: $after) {
    nodes { ...JidokaIssue }
    pageInfo { hasNextPage endCursor }
  }
}
"""
    + ISSUE_FIELDS
)

WORKFLOW_STATES_QUERY = f"""
query JidokaWorkflowStates($teamId: ID!) {{
  workflowStates(filter: {{ team: {{ id: {{ eq: $teamId }} }} }}, first: {STATES_PER_TEAM}) {{
    nodes {{ id name }}
  }}
}}
"""

ISSUE_UPDATE_MUTATION = (
    """
mutation JidokaIssueUpdate($id: String!, $stateId: String!) {
  issueUpdate(id: $id, input: { stateId: $stateId }) {
    success
    issue { ...JidokaIssue }
  }
}
"""
    + ISSUE_FIELDS
)

ISSUE_COMMENTS_QUERY = """
query JidokaIssueComments($id: String!, $first: Int!, $after: String) {
  issue(id: $id) {
    comments(first: $first, after: $after) {
      nodes { body }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

COMMENT_CREATE_MUTATION = """
mutation JidokaCommentCreate($issueId: String!, $body: String!) {
  commentCreate(input: { issueId: $issueId, body: $body }) {
    success
  }
}
"""

_MARKER_SAFE = "._:/#@+=-"


def marker_tag(marker: str) -> str:
    """The idempotency key of a comment, as a visible code span on its last line: Linear
    stores comments as rich text and does not promise to keep an HTML comment, while a code
    span's text survives the round trip unescaped."""
    if not marker:
        raise ValueError("a comment marker must not be empty")
    return f"`jidoka:{quote(marker, safe=_MARKER_SAFE)}`"


# --------------------------------------------------------------------------------------------
# Normalisation (pure)
# --------------------------------------------------------------------------------------------


def _priority(value: object) -> int | None:
    """Linear: 0 = no priority, 1 urgent .. 4 low. The API types it Float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # the range first: int() of an infinity raises, and a NaN is in no range
    if not 1 <= value <= 4 or value != int(value):
        return None
    return int(value)


def _nodes(connection: object) -> list[object]:
    obj = as_object(connection)
    return (as_list(obj.get("nodes")) if obj is not None else None) or []


def _state_name(value: object) -> str | None:
    obj = as_object(value)
    return non_empty_str(obj.get("name")) if obj is not None else None


def _blockers(relations: object) -> list[BlockerRef]:
    """Inverse relations of type ``blocks``: the related issue blocks this one."""
    blockers: list[BlockerRef] = []
    for node in _nodes(relations):
        relation = as_object(node)
        if relation is None or relation.get("type") != "blocks":
            continue
        other = as_object(relation.get("issue"))
        if other is None:
            continue
        blocker_id = non_empty_str(other.get("id"))
        identifier = non_empty_str(other.get("identifier"))
        if blocker_id is None and identifier is None:
            continue
        blockers.append(
            BlockerRef(id=blocker_id, identifier=identifier, state=_state_name(other.get("state")))
        )
    return blockers


def decode_issue(raw: object) -> Issue:
    """One ``JidokaIssue`` node -> an Issue. Raises :class:`MalformedRecordError`."""
    node = as_object(raw)
    if node is None:
        raise MalformedRecordError("not a JSON object")
    issue_id = non_empty_str(node.get("id"))
    identifier = non_empty_str(node.get("identifier"))
    if issue_id is None or identifier is None:
        raise MalformedRecordError(f"no id or identifier ({identifier or issue_id!r})")
    title = non_empty_str(node.get("title"))
    if title is None:
        raise MalformedRecordError(f"{identifier}: no title")
    state = _state_name(node.get("state"))
    if state is None:
        raise MalformedRecordError(f"{identifier}: no state name")
    description = node.get("description")
    label_names: list[object] = []
    for label in _nodes(node.get("labels")):
        obj = as_object(label)
        label_names.append(obj.get("name") if obj is not None else None)
    return Issue(
        id=issue_id,
        identifier=identifier,
        title=title,
        description=description if isinstance(description, str) else None,
        priority=_priority(node.get("priority")),
        state=state,
        branch_name=non_empty_str(node.get("branchName")),
        url=non_empty_str(node.get("url")),
        labels=clean_labels(label_names),
        blocked_by=_blockers(node.get("inverseRelations")),
        created_at=parse_timestamp(node.get("createdAt")),
        updated_at=parse_timestamp(node.get("updatedAt")),
    )


def read_rate_limit(headers: httpx.Headers, now: datetime) -> RateLimitSnapshot | None:
    """Linear reports two budgets (requests and complexity), plus a third on endpoints with a
    lower limit of their own; the tighter one will stop us first, so that is the one the gate
    sees."""
    budgets: list[RateLimitSnapshot] = []
    for resource, prefix in (
        ("requests", "x-ratelimit-requests-"),
        ("complexity", "x-ratelimit-complexity-"),
        ("endpoint", "x-ratelimit-endpoint-requests-"),
    ):
        remaining = parse_int(headers.get(prefix + "remaining"))
        if remaining is None:
            continue
        budgets.append(
            RateLimitSnapshot(
                remaining=remaining,
                limit=parse_int(headers.get(prefix + "limit")),
                reset_at=parse_epoch(headers.get(prefix + "reset")),
                observed_at=now,
                resource=resource,
            )
        )
    if not budgets:
        return None

    def fraction_left(budget: RateLimitSnapshot) -> float:
        remaining = budget.remaining or 0
        return remaining / budget.limit if budget.limit else float(remaining > 0)

    return min(budgets, key=fraction_left)


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

Connection = Callable[[dict[str, object]], object]
"""Picks the paginated connection out of a query's ``data``."""


class LinearTracker(RemoteTracker[ApiClient, LinearTrackerConfig]):
    def __init__(
        self,
        config: LinearTrackerConfig,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        cache: ConditionalCache | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = utc_now,
    ) -> None:
        self._config = config
        # Personal API keys go in the header as they are; only OAuth tokens take "Bearer".
        self._api = ApiClient(
            provider="linear",
            base_url=config.endpoint,
            headers={"Authorization": token, "Content-Type": "application/json"},
            secrets=[token],
            read_rate_limit=read_rate_limit,
            transport=transport,
            retry=retry,
            cache=cache,
            sleep=sleep,
            clock=clock,
        )
        self._state_ids: dict[str, dict[str, str]] = {}
        """Team id -> case-folded state name -> workflow state id."""

    def __repr__(self) -> str:
        return (
            f"LinearTracker(project_slug={self._config.project_slug!r}, "
            f"endpoint={self._config.endpoint!r})"
        )

    # -- reads -------------------------------------------------------------------------------

    async def fetch_issues_by_states(self, states: Sequence[str]) -> list[Issue]:
        names = list(dict.fromkeys(s for s in states if s.strip()))
        if not names:
            return []
        variables: dict[str, object] = {
            "projectSlug": self._config.project_slug,
            "stateNames": names,
        }
        document = ISSUES_BY_STATES_QUERY
        if self._config.team_key is not None:
            document = ISSUES_BY_STATES_IN_TEAM_QUERY
            variables["teamKey"] = self._config.team_key
        nodes = await self._paginate(document, variables, lambda data: data.get("issues"))
        issues: dict[str, Issue] = {}
        for node in nodes:
            try:
                issue = decode_issue(node)
            except MalformedRecordError as error:
                logger.warning("linear %s: skipping a malformed issue: %s", self._scope(), error)
                continue
            issues.setdefault(issue.id, issue)
        return list(issues.values())

    async def fetch_issues_by_ids(self, issue_ids: Sequence[str]) -> list[Issue]:
        ids = list(dict.fromkeys(i for i in issue_ids if i.strip()))
        if not ids:
            return []
        nodes = await self._paginate(
            ISSUES_BY_IDS_QUERY, {"ids": ids}, lambda data: data.get("issues")
        )
        issues: dict[str, Issue] = {}
        for node in nodes:
            if not self._in_scope(node):
                continue
            try:
                issue = decode_issue(node)
            except MalformedRecordError as error:
                raise self._api.error(TrackerErrorCategory.MALFORMED_ISSUE, str(error)) from None
            issues.setdefault(issue.id, issue)
        return list(issues.values())

    async def fetch_issue(self, issue_id: str) -> Issue:
        found = await self.fetch_issues_by_ids([issue_id])
        if not found:
            raise self._api.error(
                TrackerErrorCategory.NOT_FOUND, f"issue {issue_id!r} is not in {self._scope()}"
            )
        return found[0]

    # -- writes ------------------------------------------------------------------------------

    async def set_state(self, issue: Issue, target_state: str) -> Issue:
        nodes = await self._paginate(
            ISSUES_BY_IDS_QUERY, {"ids": [issue.id]}, lambda data: data.get("issues")
        )
        if not nodes:
            raise self._api.error(TrackerErrorCategory.NOT_FOUND, f"issue {issue.id!r} not found")
        try:
            live = decode_issue(nodes[0])
        except MalformedRecordError as error:
            raise self._api.error(TrackerErrorCategory.MALFORMED_ISSUE, str(error)) from None
        if live.state.strip().casefold() == target_state.strip().casefold():
            return live
        team = as_object((as_object(nodes[0]) or {}).get("team"))
        team_id = non_empty_str(team.get("id")) if team is not None else None
        if team_id is None:
            raise self._api.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD, f"{live.identifier}: no team id"
            )
        state_id = await self._state_id(team_id, target_state)
        data = await self._graphql(
            ISSUE_UPDATE_MUTATION,
            {"id": live.id, "stateId": state_id},
            # Setting a state is idempotent: safe to resend after a lost answer.
            safe=True,
        )
        payload = as_object(data.get("issueUpdate"))
        if payload is None or payload.get("success") is not True:
            raise self._api.error(
                TrackerErrorCategory.UNPROCESSABLE, f"issueUpdate of {live.identifier} refused"
            )
        try:
            return decode_issue(payload.get("issue"))
        except MalformedRecordError as error:
            raise self._api.error(TrackerErrorCategory.MALFORMED_ISSUE, str(error)) from None

    async def add_comment(self, issue: Issue, body: str, marker: str) -> bool:
        tag = marker_tag(marker)
        comments = await self._paginate(
            ISSUE_COMMENTS_QUERY,
            {"id": issue.id},
            lambda data: (as_object(data.get("issue")) or {}).get("comments"),
        )
        for comment in comments:
            obj = as_object(comment)
            text = obj.get("body") if obj is not None else None
            if isinstance(text, str) and tag in text:
                return False
        data = await self._graphql(
            COMMENT_CREATE_MUTATION,
            {"issueId": issue.id, "body": f"{body}\n\n{tag}"},
            # Not resent in-process: a create whose answer was lost must not post twice.
            safe=False,
        )
        payload = as_object(data.get("commentCreate"))
        if payload is None or payload.get("success") is not True:
            raise self._api.error(
                TrackerErrorCategory.UNPROCESSABLE, f"commentCreate on {issue.identifier} refused"
            )
        return True

    # -- internals ---------------------------------------------------------------------------

    def _scope(self) -> str:
        team = f", team {self._config.team_key}" if self._config.team_key else ""
        return f"project {self._config.project_slug}{team}"

    def _in_scope(self, raw: object) -> bool:
        """By-id reads are filtered here: an issue moved out of the project (or team) is no
        longer the line's, and the orchestrator reads its absence as exactly that."""
        node = as_object(raw)
        if node is None:
            return True  # let decoding report it as malformed
        project = as_object(node.get("project"))
        if project is None or project.get("slugId") != self._config.project_slug:
            return False
        if self._config.team_key is None:
            return True
        team = as_object(node.get("team"))
        return team is not None and team.get("key") == self._config.team_key

    async def _state_id(self, team_id: str, state_name: str) -> str:
        key = state_name.strip().casefold()
        cached = self._state_ids.get(team_id)
        if cached is not None and key in cached:
            return cached[key]
        # Unknown name or first use: (re)load the team's states once; a state added in Linear
        # since the cache was filled is then found.
        data = await self._graphql(WORKFLOW_STATES_QUERY, {"teamId": team_id}, safe=True)
        connection = as_object(data.get("workflowStates"))
        nodes = as_list(connection.get("nodes")) if connection is not None else None
        if nodes is None:
            raise self._api.error(TrackerErrorCategory.UNKNOWN_PAYLOAD, "workflowStates: no nodes")
        states: dict[str, str] = {}
        for node in nodes:
            obj = as_object(node)
            if obj is None:
                continue
            name = non_empty_str(obj.get("name"))
            state_id = non_empty_str(obj.get("id"))
            if name is not None and state_id is not None:
                states.setdefault(name.strip().casefold(), state_id)
        self._state_ids[team_id] = states
        if key not in states:
            raise self._api.error(
                TrackerErrorCategory.UNPROCESSABLE,
                f"the team has no workflow state named {state_name!r}",
            )
        return states[key]

    async def _paginate(
        self, document: str, variables: dict[str, object], connection: Connection
    ) -> list[object]:
        nodes: list[object] = []
        after: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            data = await self._graphql(
                document, {**variables, "first": PAGE_SIZE, "after": after}, safe=True
            )
            page = as_object(connection(data))
            page_nodes = as_list(page.get("nodes")) if page is not None else None
            info = as_object(page.get("pageInfo")) if page is not None else None
            if page_nodes is None or info is None:
                raise self._api.error(
                    TrackerErrorCategory.UNKNOWN_PAYLOAD, "a connection without nodes or pageInfo"
                )
            nodes.extend(page_nodes)
            if info.get("hasNextPage") is not True:
                return nodes
            cursor = non_empty_str(info.get("endCursor"))
            if cursor is None or cursor in seen:
                raise self._api.error(
                    TrackerErrorCategory.MISSING_PAGINATION_CURSOR,
                    "hasNextPage without a new endCursor",
                )
            seen.add(cursor)
            after = cursor
        raise self._api.error(
            TrackerErrorCategory.MISSING_PAGINATION_CURSOR,
            f"more than {MAX_PAGES} pages; narrow the line's states",
        )

    async def _graphql(
        self, document: str, variables: dict[str, object], *, safe: bool
    ) -> dict[str, object]:
        # Linear answers GraphQL errors, rate limits included, with HTTP 400 and an errors
        # body: those are read here rather than treated as a bare status.
        # The exact endpoint, not a path under it: httpx would add a trailing slash to "".
        reply = await self._api.request(
            "POST",
            self._config.endpoint,
            json={"query": document, "variables": variables},
            safe=safe,
            passthrough=(400,),
        )
        body = as_object(reply.body)
        if body is None:
            raise self._api.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD
                if reply.status < 300
                else TrackerErrorCategory.API_STATUS,
                f"HTTP {reply.status}: the answer is not a GraphQL response",
            )
        errors = as_list(body.get("errors"))
        if errors:
            raise self._graphql_error(errors, reply.headers)
        data = as_object(body.get("data"))
        if data is None:
            raise self._api.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD, f"HTTP {reply.status}: no data"
            )
        return data

    def _graphql_error(self, errors: list[object], headers: httpx.Headers) -> TrackerError:
        codes: list[str] = []
        messages: list[str] = []
        for entry in errors:
            error = as_object(entry)
            if error is None:
                continue
            message = error.get("message")
            if isinstance(message, str):
                messages.append(message)
            extensions = as_object(error.get("extensions"))
            code = extensions.get("code") if extensions is not None else None
            if isinstance(code, str):
                codes.append(code.upper())
        summary = "; ".join(messages)[:300] or "no message"
        if "RATELIMITED" in codes:
            return self._api.rate_limited(headers, summary)
        if "AUTHENTICATION_ERROR" in codes or "FORBIDDEN" in codes:
            return self._api.error(TrackerErrorCategory.AUTH, summary)
        if messages and all("not found" in m.lower() for m in messages):
            return self._api.error(TrackerErrorCategory.NOT_FOUND, summary)
        return self._api.error(TrackerErrorCategory.GRAPHQL_ERRORS, summary)
