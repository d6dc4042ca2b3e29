# pyright: strict
"""Jira adapter (``tracker.kind: jira``): Jira Cloud through REST v3, Jira Data Center through
REST v2, scoped to one project (``tracker.project_key``) and/or a JQL filter (``tracker.jql``).

Jira's workflow statuses *are* the line's states, by name, as with Linear: no mapping to
configure. ``id`` is Jira's numeric issue id (stable when an issue moves to another project,
unlike its key), ``identifier`` its key (``ENG-12``).

What this adapter asks Jira for:

* **listings** (candidates, issues by state): the JQL
  ``project = "KEY" AND status in ("A", "B") AND (<tracker.jql>) ORDER BY key ASC``, through
  ``POST /rest/api/3/search/jql`` (Cloud, ``nextPageToken`` pages) or ``POST /rest/api/2/search``
  (Data Center, ``startAt`` pages). A status name Jira does not know makes Jira refuse the whole
  JQL (HTTP 400), reported as ``tracker_unprocessable`` with Jira's words: a WORKFLOW.md naming
  a state the project lacks is a configuration error to fix, not an empty list;
* **by id**: ``POST /rest/api/3/issue/bulkfetch`` (Cloud, 100 ids a request; ids Jira does not
  find are simply absent) or one ``GET /rest/api/2/issue/{id}`` per issue (Data Center, a few
  at a time; 404 = absent). Not a JQL ``id in (...)`` search: JQL refuses the whole query when
  one id no longer exists, and Cloud's search index is eventually consistent while these reads
  are not. By-id reads check the project key only; ``tracker.jql`` narrows *listings*, like a
  dispatch filter, since a JQL predicate cannot be evaluated on a fetched issue;
* **moving** an issue: ``GET .../issue/{id}/transitions`` and ``POST`` the one whose target
  status has the wanted name. Jira workflows decide which moves exist: a state with no
  transition from the current one is refused loudly (``tracker_unprocessable``, naming the
  transitions Jira offers), never skipped;
* **comments**: ``GET``/``POST .../issue/{id}/comment``, with the idempotency marker described at
  :func:`marker_url`.

Data Center differences (``tracker.deployment: data_center``), each where v3 does not exist:

* REST v2 paths (``/rest/api/2/...``) throughout;
* search is ``POST /rest/api/2/search`` paged by ``startAt``/``total`` (v2 has no
  ``search/jql`` and no ``nextPageToken``);
* no ``bulkfetch``: by-id reads are concurrent single-issue GETs;
* descriptions and comment bodies are wiki-markup strings, not ADF: a description is passed
  through as text, a comment is rendered to wiki markup (:func:`markdown_to_wiki`) and its
  marker is a ``{anchor:...}`` macro, which the wiki renderer draws as nothing;
* auth: Basic with a username and a password or token, or, when ``email`` resolves to an empty
  string, a personal access token sent as ``Authorization: Bearer`` (DC's PATs do not work as
  Basic credentials).

Errors follow docs/trackers.md#errors-both-adapters; Jira's ``errorMessages`` and per-field
``errors`` are quoted (truncated) in each message. Secrets (the token, the Basic credential and
the email) are scrubbed from every message and never logged; ``repr`` shows neither.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import quote

import httpx

from activities.tracker.base import MalformedRecordError, TrackerError, TrackerErrorCategory
from activities.tracker.http import (
    MESSAGE_CHARS,
    ApiClient,
    Clock,
    RateLimitSnapshot,
    Reply,
    RetryPolicy,
    Sleep,
    as_list,
    as_object,
    clean_labels,
    gather_bounded,
    non_empty_str,
    parse_epoch,
    parse_int,
    parse_timestamp,
    utc_now,
)
from activities.tracker.remote import RemoteTracker
from jidoka.config import JiraTrackerConfig
from jidoka.models import DESCRIPTION_LIMIT, BlockerRef, Issue

logger = logging.getLogger("jidoka.tracker.jira")

T = TypeVar("T")
Json = dict[str, object]

# --------------------------------------------------------------------------------------------
# Configuration (moves to jidoka/config.py when the kind is wired)
# --------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

PAGE_SIZE = 100
"""Issues per search page asked for (Cloud may answer fewer; pages follow its token)."""
MAX_PAGES = 100
"""10,000 issues in the requested states: past that, the line's scope is too wide."""
BULK_FETCH_SIZE = 100
"""Ids per Cloud ``bulkfetch`` request (its documented maximum for any field set)."""
BY_ID_CONCURRENCY = 8
"""Data Center reads issues one by one: a few at a time, not a burst."""
COMMENT_PAGE_SIZE = 100
MAX_COMMENT_PAGES = 100
COMMENT_CHARS = 32_767
"""Jira refuses a comment body longer than this (its text field limit): a longer rendering
falls back to a plain, cut one rather than being refused."""
DESCRIPTION_CHARS = 2 * DESCRIPTION_LIMIT
"""Characters an ADF description is rendered to at most; ``Issue.bounded`` cuts further."""
ADF_NODES = 20_000
ADF_DEPTH = 64
"""ADF nodes visited and nesting followed per document: a pathological description costs a
bounded amount of work."""
FIELDS = [
    "summary",
    "description",
    "status",
    "priority",
    "labels",
    "issuelinks",
    "created",
    "updated",
    "project",
]
"""The issue fields every read asks for: only what normalisation uses."""
BLOCKS_LINK = "blocks"
BLOCKED_BY = "is blocked by"
MARKER_URL_PREFIX = "https://jidoka.invalid/comment-marker/"
ZERO_WIDTH_SPACE = "\u200b"
_MARKER_SAFE = "._-"


# --------------------------------------------------------------------------------------------
# Markers
# --------------------------------------------------------------------------------------------


def _marker_key(marker: str) -> str:
    if not marker:
        raise ValueError("a comment marker must not be empty")
    return quote(marker, safe=_MARKER_SAFE)


def marker_url(marker: str) -> str:
    """Where a Cloud comment's idempotency key lives: the ``href`` of a link mark on a lone
    zero-width space, in a last paragraph of its own.

    Why this: ADF has no comment node and no hidden mark, and Jira renders every node it keeps.
    A link on a zero-width space renders as nothing, is stored as submitted (schema-valid ADF:
    a non-empty text node, an absolute https URL), and survives a person editing the visible
    text around it. The ``.invalid`` host (RFC 2606) never resolves. The adapter finds the URL
    again anywhere in a comment's serialised body, so a re-shaped node (the link turned into
    text or a card) still counts. Percent-encoding keeps any marker a single URL path segment.
    """
    return MARKER_URL_PREFIX + _marker_key(marker)


def marker_anchor(marker: str) -> str:
    """The Data Center marker: a wiki ``{anchor}`` macro, rendered as an empty HTML anchor
    (invisible). Percent-encoding leaves no ``}``, ``|`` or ``=`` to end or split the macro."""
    return "{anchor:jidoka-" + _marker_key(marker) + "}"


def has_marker(body: object, marker: str) -> bool:
    """Whether a comment body (ADF object or wiki string) carries ``marker`` in either form."""
    url, anchor = marker_url(marker), marker_anchor(marker)
    if isinstance(body, str):
        text = body
    else:
        try:
            text = json.dumps(body, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            return False
    # The encoded key never holds a character outside [A-Za-z0-9._%-]: one right after the
    # URL means a longer marker ("m:10" is not "m:1"). The anchor ends with its own "}".
    return anchor in text or re.search(re.escape(url) + r"(?![A-Za-z0-9._%-])", text) is not None


# --------------------------------------------------------------------------------------------
# JQL
# --------------------------------------------------------------------------------------------


def jql_string(value: str) -> str:
    """A JQL string literal: double quotes, backslash escapes (a status named ``Won't "Do"``
    stays one value)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def search_jql(config: JiraTrackerConfig, states: Sequence[str]) -> str:
    """The listing query: the project, the states, the configured JQL, a stable order (which
    ``startAt`` paging on Data Center needs to not skip or repeat issues)."""
    clauses: list[str] = []
    if config.project_key is not None:
        clauses.append(f"project = {jql_string(config.project_key)}")
    clauses.append(f"status in ({', '.join(jql_string(s) for s in states)})")
    if config.jql is not None:
        clauses.append(f"({config.jql})")
    return " AND ".join(clauses) + " ORDER BY key ASC"


# --------------------------------------------------------------------------------------------
# ADF -> text (descriptions)
# --------------------------------------------------------------------------------------------


@dataclass
class _Budget:
    nodes: int = ADF_NODES
    chars: int = DESCRIPTION_CHARS
    cut: bool = False

    def visit(self) -> bool:
        if self.nodes <= 0 or self.chars <= 0:
            self.cut = True
            return False
        self.nodes -= 1
        return True

    def text(self, value: str) -> str:
        if len(value) > self.chars:
            self.cut = True
            value = value[: max(self.chars, 0)]
        self.chars -= len(value)
        return value


def _attrs(node: Json) -> Json:
    return as_object(node.get("attrs")) or {}


def _children(node: Json) -> list[Json]:
    return [child for child in map(as_object, as_list(node.get("content")) or []) if child]


def _fence(text: str, char: str = "`", least: int = 3) -> str:
    longest = max((len(run) for run in re.findall(f"{re.escape(char)}+", text)), default=0)
    return char * max(least, longest + 1)


def _wrap_code(text: str) -> str:
    fence = _fence(text, least=1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _marked(text: str, marks: list[object]) -> str:
    kinds: dict[str, Json] = {}
    for mark in marks:
        obj = as_object(mark)
        kind = obj.get("type") if obj is not None else None
        if isinstance(kind, str):
            kinds[kind] = _attrs(obj) if obj is not None else {}
    if not text.strip():
        return text
    if "code" in kinds:
        text = _wrap_code(text)
    if "em" in kinds:
        text = f"*{text}*"
    if "strong" in kinds:
        text = f"**{text}**"
    if "strike" in kinds:
        text = f"~~{text}~~"
    href = non_empty_str(kinds["link"].get("href")) if "link" in kinds else None
    if href is not None:
        text = f"[{text}]({href})"
    return text


def _inline(node: Json, budget: _Budget, depth: int) -> str:
    if depth > ADF_DEPTH or not budget.visit():
        budget.cut = True
        return ""
    kind = node.get("type")
    attrs = _attrs(node)
    match kind:
        case "text":
            text = node.get("text")
            if not isinstance(text, str):
                return ""
            return _marked(budget.text(text), as_list(node.get("marks")) or [])
        case "hardBreak":
            return "\n"
        case "mention":
            name = non_empty_str(attrs.get("text")) or non_empty_str(attrs.get("id")) or ""
            return budget.text(name if name.startswith("@") else f"@{name}")
        case "emoji":
            return budget.text(
                non_empty_str(attrs.get("text")) or non_empty_str(attrs.get("shortName")) or ""
            )
        case "inlineCard":
            return budget.text(non_empty_str(attrs.get("url")) or "")
        case "status":
            label = non_empty_str(attrs.get("text"))
            return budget.text(f"[{label}]") if label else ""
        case "date":
            stamp = attrs.get("timestamp")
            when = parse_epoch(str(stamp)) if isinstance(stamp, str | int) else None
            return budget.text(when.date().isoformat()) if when else ""
        case "mediaInline":
            return budget.text("[attachment]")
        case _:
            return "".join(_inline(child, budget, depth + 1) for child in _children(node))


def _inlines(node: Json, budget: _Budget, depth: int) -> str:
    return "".join(_inline(child, budget, depth + 1) for child in _children(node))


def _indent(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    return "\n".join([first + lines[0], *(rest + line if line else line for line in lines[1:])])


def _block(node: Json, budget: _Budget, depth: int) -> str:
    if depth > ADF_DEPTH or not budget.visit():
        budget.cut = True
        return ""
    kind = node.get("type")
    attrs = _attrs(node)
    match kind:
        case "paragraph":
            return _inlines(node, budget, depth)
        case "heading":
            level = attrs.get("level")
            hashes = "#" * (level if isinstance(level, int) and 1 <= level <= 6 else 1)
            return f"{hashes} {_inlines(node, budget, depth)}"
        case "bulletList" | "orderedList" | "taskList" | "decisionList":
            start = attrs.get("order")
            number = start if isinstance(start, int) and start >= 0 else 1
            items: list[str] = []
            for child in _children(node):
                if kind == "orderedList":
                    bullet = f"{number}. "
                    number += 1
                elif child.get("type") == "taskItem":
                    bullet = "- [x] " if _attrs(child).get("state") == "DONE" else "- [ ] "
                else:
                    bullet = "- "
                body = _list_item(child, budget, depth + 1)
                items.append(_indent(body, bullet, " " * len(bullet)))
            return "\n".join(items)
        case "codeBlock":
            text = _inlines(node, budget, depth)
            language = non_empty_str(attrs.get("language")) or ""
            fence = _fence(text)
            return f"{fence}{language}\n{text}\n{fence}"
        case "blockquote" | "panel":
            inner = _blocks(_children(node), budget, depth + 1)
            return "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))
        case "rule":
            return "---"
        case "table":
            return _table(node, budget, depth)
        case "mediaSingle" | "mediaGroup" | "media":
            return budget.text("[attachment]")
        case "blockCard" | "embedCard":
            return budget.text(non_empty_str(attrs.get("url")) or "")
        case "expand" | "nestedExpand":
            title = non_empty_str(attrs.get("title"))
            inner = _blocks(_children(node), budget, depth + 1)
            return f"**{budget.text(title)}**\n\n{inner}" if title else inner
        case "text" | "hardBreak" | "mention" | "emoji" | "inlineCard" | "status" | "date":
            budget.nodes += 1  # visited again as an inline node
            return _inline(node, budget, depth)
        case _:
            return _blocks(_children(node), budget, depth + 1)


def _list_item(node: Json, budget: _Budget, depth: int) -> str:
    if node.get("type") in ("taskItem", "decisionItem"):
        return _inlines(node, budget, depth)  # their content is inline
    return "\n".join(
        text for child in _children(node) if (text := _block(child, budget, depth + 1))
    )


def _table(node: Json, budget: _Budget, depth: int) -> str:
    rows: list[str] = []
    for index, row in enumerate(_children(node)):
        cells = _children(row)
        texts = [
            _blocks(_children(cell), budget, depth + 2).replace("\n", " ").replace("|", "\\|")
            for cell in cells
        ]
        rows.append("| " + " | ".join(texts) + " |")
        if index == 0 and cells and all(c.get("type") == "tableHeader" for c in cells):
            rows.append("|" + "---|" * len(cells))
    return "\n".join(rows)


def _blocks(nodes: list[Json], budget: _Budget, depth: int) -> str:
    return "\n\n".join(text for node in nodes if (text := _block(node, budget, depth)))


def adf_to_text(document: object) -> str:
    """An ADF document as Markdown-ish plain text: paragraphs, headings, lists (task lists as
    ``- [ ]``), code blocks, quotes, tables, links, mentions; media as ``[attachment]``.
    Bounded: at most :data:`ADF_NODES` nodes, :data:`ADF_DEPTH` levels and
    :data:`DESCRIPTION_CHARS` characters of text (plus the markup around it); a cut one says
    so at its end."""
    root = as_object(document)
    if root is None:
        return ""
    budget = _Budget()
    doc = root.get("type") == "doc"
    text = _blocks(_children(root), budget, 0) if doc else _block(root, budget, 0)
    text = text.strip("\n")
    if budget.cut:
        text += "\n\n[Jidoka: the description is longer than it reads here; see the issue in Jira]"
    return text


# --------------------------------------------------------------------------------------------
# Markdown -> ADF / wiki (comments)
# --------------------------------------------------------------------------------------------
# Jidoka's comments (jidoka/comments.py) use a small Markdown: paragraphs whose line breaks
# matter (GitHub renders them), bold labels, code spans, "- " lists nested by two spaces,
# "> " quotes of the agent's words with backslash escapes, and fenced code blocks. The parser
# below reads exactly that into a small tree; two renderers write it as ADF (Cloud) or wiki
# markup (Data Center).


@dataclass(frozen=True)
class _Text:
    text: str
    strong: bool = False
    link: str | None = None


@dataclass(frozen=True)
class _Code:
    text: str


_Inline = _Text | _Code


@dataclass
class _Para:
    lines: list[list[_Inline]]


@dataclass
class _Heading:
    level: int
    inlines: list[_Inline]


@dataclass
class _CodeBlock:
    language: str | None
    text: str


@dataclass
class _Item:
    blocks: list[_Block]


@dataclass
class _List:
    ordered: bool
    start: int
    items: list[_Item]


@dataclass
class _Quote:
    blocks: list[_Block]


_Block = _Para | _Heading | _CodeBlock | _List | _Quote

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$")
_QUOTE = re.compile(r"^ {0,3}> ?(.*)$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*#*[ \t]*$")
_ITEM = re.compile(r"^( *)([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$")
_URL = re.compile(r"https?://[^\s<>()\[\]`\"'|{}]+")
_PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")
MAX_QUOTE_DEPTH = 8


def _starts_block(line: str) -> bool:
    return bool(
        _FENCE.match(line) or _QUOTE.match(line) or _HEADING.match(line) or _ITEM.match(line)
    )


def _parse_blocks(lines: list[str], depth: int = 0) -> list[_Block]:
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if fence := _FENCE.match(line):
            indent, marker, language = len(fence.group(1)), fence.group(2), fence.group(3)
            body: list[str] = []
            i += 1
            while i < len(lines):
                closing = lines[i].strip()
                if closing.startswith(marker[0] * len(marker)) and not closing.strip(marker[0]):
                    i += 1
                    break
                text = lines[i]
                body.append(text[min(indent, len(text) - len(text.lstrip(" "))) :])
                i += 1
            lang = language if _LANGUAGE.fullmatch(language) else None
            blocks.append(_CodeBlock(lang, "\n".join(body)))
            continue
        if _QUOTE.match(line) and depth < MAX_QUOTE_DEPTH:
            inner: list[str] = []
            while i < len(lines) and (quoted := _QUOTE.match(lines[i])):
                inner.append(quoted.group(1))
                i += 1
            blocks.append(_Quote(_parse_blocks(inner, depth + 1)))
            continue
        if heading := _HEADING.match(line):
            level = len(heading.group(1))
            blocks.append(_Heading(level, _parse_inline(heading.group(2) or "")))
            i += 1
            continue
        if _ITEM.match(line):
            i = _parse_list(lines, i, blocks)
            continue
        para: list[str] = [line]
        i += 1
        while i < len(lines) and lines[i].strip() and not _starts_block(lines[i]):
            para.append(lines[i])
            i += 1
        blocks.append(_Para([_parse_inline(text.strip()) for text in para]))
    return blocks


def _parse_list(lines: list[str], i: int, out: list[_Block]) -> int:
    """Consecutive list items (nesting by indentation) and their continuation lines."""
    entries: list[tuple[int, bool, int, list[str]]] = []
    while i < len(lines):
        line = lines[i]
        item = _ITEM.match(line)
        if item:
            marker = item.group(2)
            ordered = marker[0].isdigit()
            start = int(marker[:-1]) if ordered else 1
            entries.append((len(item.group(1)), ordered, start, [item.group(3) or ""]))
            i += 1
            continue
        if line.strip() and entries and not _starts_block(line):
            entries[-1][3].append(line.strip())  # a continuation of the item's text
            i += 1
            continue
        if not line.strip():
            following = next((x for x in lines[i:] if x.strip()), None)
            if following is not None and _ITEM.match(following):
                i += 1
                continue
        break
    stack: list[tuple[int, _List]] = []
    for indent, ordered, start, texts in entries:
        while stack and indent < stack[-1][0]:
            stack.pop()
        if stack and indent == stack[-1][0] and stack[-1][1].ordered != ordered:
            stack.pop()
        if stack and indent == stack[-1][0]:
            target = stack[-1][1]
        else:
            target = _List(ordered=ordered, start=start, items=[])
            if stack:
                stack[-1][1].items[-1].blocks.append(target)
            else:
                out.append(target)
            stack.append((indent, target))
        target.items.append(_Item([_Para([_parse_inline(t) for t in texts])]))
    return i


def _code_span(text: str, start: int) -> tuple[str, int] | None:
    """A code span opening at ``start`` (a backtick run): its content and the index after it,
    or None when the run is never closed (then the backticks are literal)."""
    run = len(text[start:]) - len(text[start:].lstrip("`"))
    opener = "`" * run
    search = start + run
    while True:
        end = text.find(opener, search)
        if end < 0:
            return None
        after = end + run
        if after < len(text) and text[after] == "`":
            # A longer run is no closer for this opener: skip the whole of it.
            while after < len(text) and text[after] == "`":
                after += 1
            search = after
            continue
        content = text[start + run : end]
        if len(content) >= 2 and content[0] == " " and content[-1] == " " and content.strip():
            content = content[1:-1]
        return content, after


def _closing_strong(text: str, start: int) -> int | None:
    """Where the ``**`` closing a bold run opened before ``start`` is, skipping escapes and
    code spans; None when there is none."""
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _PUNCTUATION:
            i += 2
            continue
        if char == "`":
            span = _code_span(text, i)
            if span is not None:
                i = span[1]
                continue
            i += len(text[i:]) - len(text[i:].lstrip("`"))
            continue
        if text.startswith("**", i) and i > start:
            return i
        i += 1
    return None


def _parse_inline(text: str, strong: bool = False) -> list[_Inline]:
    out: list[_Inline] = []
    plain: list[str] = []

    def flush() -> None:
        if plain:
            out.extend(_linked("".join(plain), strong))
            plain.clear()

    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _PUNCTUATION:
            plain.append(text[i + 1])
            i += 2
            continue
        if char == "`":
            span = _code_span(text, i)
            if span is None:
                run = len(text[i:]) - len(text[i:].lstrip("`"))
                plain.append("`" * run)
                i += run
                continue
            flush()
            if span[0]:
                out.append(_Code(span[0]))
            i = span[1]
            continue
        if not strong and text.startswith("**", i):
            end = _closing_strong(text, i + 2)
            if end is not None and end > i + 2:
                flush()
                out.extend(_parse_inline(text[i + 2 : end], strong=True))
                i = end + 2
                continue
        plain.append(char)
        i += 1
    flush()
    return out


def _linked(text: str, strong: bool) -> list[_Inline]:
    """Bare URLs become links (GitHub and Linear link them when rendering; ADF does not)."""
    parts: list[_Inline] = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?")
        if match.start() > last:
            parts.append(_Text(text[last : match.start()], strong))
        parts.append(_Text(url, strong, link=url))
        last = match.start() + len(url)
    if last < len(text):
        parts.append(_Text(text[last:], strong))
    return parts


def parse_markdown(text: str) -> list[_Block]:
    return _parse_blocks(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


# -- ADF ------------------------------------------------------------------------------------


def _adf_inline(inline: _Inline) -> Json | None:
    if not inline.text:
        return None  # ADF refuses empty text nodes
    if isinstance(inline, _Code):
        return {"type": "text", "text": inline.text, "marks": [{"type": "code"}]}
    marks: list[Json] = []
    if inline.strong:
        marks.append({"type": "strong"})
    if inline.link is not None:
        marks.append({"type": "link", "attrs": {"href": inline.link}})
    node: Json = {"type": "text", "text": inline.text}
    if marks:
        node["marks"] = marks
    return node


def _adf_paragraph(lines: list[list[_Inline]]) -> Json:
    content: list[object] = []
    for index, line in enumerate(lines):
        if index:
            content.append({"type": "hardBreak"})
        content.extend(node for node in map(_adf_inline, line) if node is not None)
    return {"type": "paragraph", "content": content}


def _adf_blocks(blocks: list[_Block], *, nested: bool = False) -> list[object]:
    """ADF nodes for ``blocks``. A blockquote or a list item may hold paragraphs, lists and
    code blocks only: ``nested`` there, a heading becomes a bold paragraph and a quote is
    flattened into its blocks."""
    nodes: list[object] = []
    for block in blocks:
        match block:
            case _Para(lines):
                nodes.append(_adf_paragraph(lines))
            case _Heading(level, inlines):
                if nested:
                    bold = [
                        _Text(x.text, True, x.link) if isinstance(x, _Text) else x for x in inlines
                    ]
                    nodes.append(_adf_paragraph([bold]))
                else:
                    content = [n for n in map(_adf_inline, inlines) if n is not None]
                    nodes.append({"type": "heading", "attrs": {"level": level}, "content": content})
            case _CodeBlock(language, text):
                code: Json = {"type": "codeBlock"}
                if language:
                    code["attrs"] = {"language": language}
                if text:
                    code["content"] = [{"type": "text", "text": text}]
                nodes.append(code)
            case _List(ordered, start, items):
                node: Json = {
                    "type": "orderedList" if ordered else "bulletList",
                    "content": [
                        {"type": "listItem", "content": _adf_blocks(item.blocks, nested=True)}
                        for item in items
                    ],
                }
                if ordered:
                    node["attrs"] = {"order": start}
                nodes.append(node)
            case _Quote(inner):
                if nested:
                    nodes.extend(_adf_blocks(inner, nested=True))
                else:
                    content = _adf_blocks(inner, nested=True)
                    nodes.append({"type": "blockquote", "content": content or [_adf_paragraph([])]})
    return nodes


def _marker_paragraph(marker: str) -> Json:
    return {
        "type": "paragraph",
        "content": [
            {
                "type": "text",
                "text": ZERO_WIDTH_SPACE,
                "marks": [{"type": "link", "attrs": {"href": marker_url(marker)}}],
            }
        ],
    }


def _doc(content: list[object]) -> Json:
    return {"type": "doc", "version": 1, "content": content}


def _size(document: object) -> int:
    return len(json.dumps(document, ensure_ascii=False))


def markdown_to_adf(text: str, marker: str | None = None) -> Json:
    """Jidoka's comment Markdown as an ADF document, the marker (when given) in a last
    paragraph of its own (:func:`marker_url`). A rendering past Jira's :data:`COMMENT_CHARS`
    falls back to the text as one plain code block, cut to fit: the comment is still posted,
    and still carries its marker."""
    tail = [_marker_paragraph(marker)] if marker is not None else []
    document = _doc([*_adf_blocks(parse_markdown(text)), *tail])
    if _size(document) <= COMMENT_CHARS:
        return document
    note = "\n\n[Jidoka: cut to fit Jira's comment limit]"
    keep = len(text)
    while True:
        plain = _doc(
            [
                {"type": "codeBlock", "content": [{"type": "text", "text": text[:keep] + note}]},
                *tail,
            ]
        )
        excess = _size(plain) - COMMENT_CHARS
        if excess <= 0 or keep == 0:
            return plain
        keep = max(0, keep - excess)


# -- wiki markup (Data Center) --------------------------------------------------------------

_WIKI_SPECIAL = set("*_?-+^~{}[]|!#")


def _wiki_escape(text: str) -> str:
    out: list[str] = []
    for index, char in enumerate(text):
        if char in _WIKI_SPECIAL:
            out.append("\\" + char)
        elif char == "\\":
            # "\\" is a line break in wiki markup: keep a literal backslash apart from the
            # next one (or from the escape of a special character).
            following = text[index + 1] if index + 1 < len(text) else ""
            out.append("\\" + ZERO_WIDTH_SPACE if following in _WIKI_SPECIAL | {"\\"} else "\\")
        else:
            out.append(char)
    return "".join(out)


def _wiki_inline(inline: _Inline) -> str:
    if isinstance(inline, _Code):
        return "{{" + _wiki_escape(inline.text) + "}}" if inline.text.strip() else inline.text
    if inline.link is not None:
        return f"[{inline.link}]"
    if inline.strong and inline.text.strip():
        lead = inline.text[: len(inline.text) - len(inline.text.lstrip())]
        trail = inline.text[len(inline.text.rstrip()) :]
        return f"{lead}*{_wiki_escape(inline.text.strip())}*{trail}"
    return _wiki_escape(inline.text)


def _wiki_line(line: list[_Inline]) -> str:
    return "".join(map(_wiki_inline, line))


def _wiki_blocks(blocks: list[_Block], prefix: str = "") -> list[str]:
    out: list[str] = []
    for block in blocks:
        match block:
            case _Para(lines):
                out.append("\n".join(_wiki_line(line) for line in lines))
            case _Heading(level, inlines):
                out.append(f"h{level}. {_wiki_line(inlines)}")
            case _CodeBlock(_, text):
                out.append(
                    "{noformat}\n" + text.replace("{noformat}", "{ noformat}") + "\n{noformat}"
                )
            case _List(ordered, _, items):
                bullet = prefix + ("#" if ordered else "*")
                rendered: list[str] = []
                for item in items:
                    head, *rest = item.blocks or [_Para([])]
                    first = (
                        " \\\\ ".join(_wiki_line(line) for line in head.lines)
                        if isinstance(head, _Para)
                        else "\n".join(_wiki_blocks([head], bullet))
                    )
                    rendered.append(f"{bullet} {first}")
                    rendered.extend(_wiki_blocks(rest, bullet))
                out.append("\n".join(rendered))
            case _Quote(inner):
                out.append("{quote}\n" + "\n\n".join(_wiki_blocks(inner)) + "\n{quote}")
    return out


def markdown_to_wiki(text: str, marker: str | None = None) -> str:
    """Jidoka's comment Markdown as Jira wiki markup (Data Center's comment format), the marker
    (when given) as an invisible ``{anchor}`` on the last line; cut to Jira's limit."""
    tail = f"\n\n{marker_anchor(marker)}" if marker is not None else ""
    body = "\n\n".join(_wiki_blocks(parse_markdown(text)))
    if len(body) + len(tail) > COMMENT_CHARS:
        note = "\n\n[Jidoka: cut to fit Jira's comment limit]"
        body = body[: COMMENT_CHARS - len(tail) - len(note)] + note
    return body + tail


# --------------------------------------------------------------------------------------------
# Normalisation (pure)
# --------------------------------------------------------------------------------------------


def _name_of(value: object) -> str | None:
    obj = as_object(value)
    return non_empty_str(obj.get("name")) if obj is not None else None


def _priority(fields: Json, priority_map: dict[str, int]) -> int | None:
    name = _name_of(fields.get("priority"))
    if name is None:
        return None
    wanted = {key.strip().casefold(): value for key, value in priority_map.items()}
    return wanted.get(name.strip().casefold())


def _is_blocks_type(link_type: Json | None) -> bool:
    if link_type is None:
        return False
    name = non_empty_str(link_type.get("name"))
    inward = non_empty_str(link_type.get("inward"))
    return (name is not None and name.strip().casefold() == BLOCKS_LINK) or (
        inward is not None and inward.strip().casefold() == BLOCKED_BY
    )


def _blockers(fields: Json) -> list[BlockerRef]:
    """Issue links of type "Blocks" where this issue is the inward side: Jira lists such a
    link with the *other* issue under ``inwardIssue``, shown as "is blocked by <other>"
    (developer.atlassian.com, "Jira issue linking model"). The other issue's status comes
    with the link."""
    blockers: dict[str, BlockerRef] = {}
    for entry in as_list(fields.get("issuelinks")) or []:
        link = as_object(entry)
        if link is None or not _is_blocks_type(as_object(link.get("type"))):
            continue
        other = as_object(link.get("inwardIssue"))
        if other is None:
            continue
        other_id = non_empty_str(other.get("id"))
        other_key = non_empty_str(other.get("key"))
        if other_id is None and other_key is None:
            continue
        other_fields = as_object(other.get("fields")) or {}
        blocker = BlockerRef(
            id=other_id, identifier=other_key, state=_name_of(other_fields.get("status"))
        )
        blockers.setdefault(other_id or other_key or "", blocker)
    return list(blockers.values())


def _description(value: object) -> str | None:
    if isinstance(value, str):
        return value  # Data Center: wiki markup, as written
    if as_object(value) is not None:
        return adf_to_text(value)
    return None


def issue_project(raw: object) -> str | None:
    obj = as_object(raw)
    fields = as_object(obj.get("fields")) if obj is not None else None
    project = as_object(fields.get("project")) if fields is not None else None
    return non_empty_str(project.get("key")) if project is not None else None


def decode_issue(raw: object, config: JiraTrackerConfig) -> Issue:
    """One Jira issue (REST v3 or v2 shape) -> an Issue. Raises :class:`MalformedRecordError`."""
    obj = as_object(raw)
    if obj is None:
        raise MalformedRecordError("not a JSON object")
    issue_id = obj.get("id")
    if isinstance(issue_id, int) and not isinstance(issue_id, bool):
        issue_id = str(issue_id)
    issue_id = non_empty_str(issue_id)
    key = non_empty_str(obj.get("key"))
    if issue_id is None or key is None:
        raise MalformedRecordError(f"no id or key ({key or issue_id!r})")
    fields = as_object(obj.get("fields"))
    if fields is None:
        raise MalformedRecordError(f"{key}: no fields")
    summary = non_empty_str(fields.get("summary"))
    if summary is None:
        raise MalformedRecordError(f"{key}: no summary")
    state = _name_of(fields.get("status"))
    if state is None:
        raise MalformedRecordError(f"{key}: no status name")
    labels = as_list(fields.get("labels"))
    if labels is None and fields.get("labels") is not None:
        raise MalformedRecordError(f"{key}: labels is not a list")
    return Issue(
        id=issue_id,
        identifier=key,
        title=summary,
        description=_description(fields.get("description")),
        priority=_priority(fields, config.priority_map),
        state=state,
        url=f"{config.base_url}/browse/{quote(key, safe='')}",
        labels=clean_labels(labels or []),
        blocked_by=_blockers(fields),
        created_at=parse_timestamp(fields.get("created")),
        updated_at=parse_timestamp(fields.get("updated")),
    )


def read_rate_limit(headers: httpx.Headers, now: datetime) -> RateLimitSnapshot | None:
    """Jira's ``X-RateLimit-*`` headers. Cloud gives the reset as an ISO 8601 time
    (``2026-01-02T03:05Z``) and the budget that ran out in ``RateLimit-Reason``; Data Center
    gives no reset time (its ``Retry-After`` says how long)."""
    remaining = parse_int(headers.get("x-ratelimit-remaining"))
    if remaining is None:
        return None
    reset_text = headers.get("x-ratelimit-reset")
    reset_at = parse_timestamp(reset_text) or parse_epoch(reset_text)
    if reset_at is not None:
        reset_at = reset_at.astimezone(UTC)
    return RateLimitSnapshot(
        remaining=remaining,
        limit=parse_int(headers.get("x-ratelimit-limit")),
        reset_at=reset_at,
        observed_at=now,
        resource=headers.get("ratelimit-reason"),
    )


def jira_message(body: object) -> str:
    """The human part of a Jira error body: ``errorMessages`` and the per-field ``errors``."""
    obj = as_object(body)
    if obj is None:
        return ""
    parts: list[str] = [
        m for m in as_list(obj.get("errorMessages")) or [] if isinstance(m, str) and m
    ]
    for name, message in (as_object(obj.get("errors")) or {}).items():
        if isinstance(message, str) and message:
            parts.append(f"{name}: {message}")
    if not parts:
        message = obj.get("message")
        if isinstance(message, str) and message:
            parts.append(message)
    return "; ".join(parts)[:MESSAGE_CHARS]


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

_CLASSIFIED = (400, 401, 403, 404, 409, 410, 422)
"""Statuses this adapter classifies itself, to quote Jira's error body; the rest (429, 5xx,
redirects) are :class:`ApiClient`'s."""


@dataclass(frozen=True)
class _Transition:
    id: str
    name: str
    to: str


class JiraTracker(RemoteTracker[ApiClient, JiraTrackerConfig]):
    def __init__(
        self,
        config: JiraTrackerConfig,
        email: str,
        api_token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = utc_now,
    ) -> None:
        if not api_token:
            raise TrackerError(TrackerErrorCategory.MISSING_API_KEY, "jira: no API token")
        cloud = config.deployment == "cloud"
        if cloud and not email:
            raise TrackerError(
                TrackerErrorCategory.MISSING_API_KEY, "jira: Cloud needs the account's email"
            )
        self._config = config
        self._cloud = cloud
        self._v = "3" if cloud else "2"
        secrets = [api_token]
        if email:
            credential = base64.b64encode(f"{email}:{api_token}".encode()).decode("ascii")
            authorization = f"Basic {credential}"
            secrets += [credential, email]
        else:
            authorization = f"Bearer {api_token}"  # a Data Center personal access token
        self._api = ApiClient(
            provider="jira",
            base_url=config.base_url + "/",
            headers={
                "Authorization": authorization,
                "Accept": "application/json",
                "User-Agent": "jidoka",
            },
            secrets=secrets,
            read_rate_limit=read_rate_limit,
            transport=transport,
            retry=retry,
            sleep=sleep,
            clock=clock,
        )

    def __repr__(self) -> str:
        scope = self._config.project_key or self._config.jql
        return (
            f"JiraTracker(base_url={self._config.base_url!r}, scope={scope!r}, "
            f"deployment={self._config.deployment!r})"
        )

    # -- reads -------------------------------------------------------------------------------

    async def fetch_issues_by_states(self, states: Sequence[str]) -> list[Issue]:
        names = list(dict.fromkeys(s.strip() for s in states if s.strip()))
        if not names:
            return []
        issues: dict[str, Issue] = {}
        for raw in await self._search(search_jql(self._config, names)):
            try:
                issue = decode_issue(raw, self._config)
            except MalformedRecordError as error:
                logger.warning("jira %s: skipping a malformed issue: %s", self._scope(), error)
                continue
            issues.setdefault(issue.id, issue)
        return list(issues.values())

    async def fetch_issues_by_ids(self, issue_ids: Sequence[str]) -> list[Issue]:
        ids = list(dict.fromkeys(i.strip() for i in issue_ids if i.strip()))
        if not ids:
            return []
        raws = await (self._bulk_fetch(ids) if self._cloud else self._get_each(ids))
        issues: dict[str, Issue] = {}
        for raw in raws:
            if not self._in_scope(raw):
                continue
            issue = self._decode_strict(raw)
            issues.setdefault(issue.id, issue)
        return list(issues.values())

    async def fetch_issue(self, issue_id: str) -> Issue:
        if not issue_id.strip():
            raise self._api.error(TrackerErrorCategory.NOT_FOUND, "an empty issue id")
        raw = await self._get_issue(issue_id.strip())
        if not self._in_scope(raw):
            raise self._api.error(
                TrackerErrorCategory.NOT_FOUND,
                f"issue {issue_id!r} is in project {issue_project(raw)}, not {self._scope()}",
            )
        return self._decode_strict(raw)

    # -- writes ------------------------------------------------------------------------------

    async def set_state(self, issue: Issue, target_state: str) -> Issue:
        live = await self.fetch_issue(issue.id)
        wanted = target_state.strip().casefold()
        if live.state.strip().casefold() == wanted:
            return live
        transitions = await self._transitions(live)
        chosen = next((t for t in transitions if t.to.strip().casefold() == wanted), None)
        if chosen is None:
            offered = ", ".join(f"{t.name!r} -> {t.to!r}" for t in transitions) or "none"
            raise self._api.error(
                TrackerErrorCategory.UNPROCESSABLE,
                f"{live.identifier}: Jira's workflow has no transition from {live.state!r} to "
                f"{target_state!r}; available: {offered}",
            )
        # Sent once: resent after a lost answer, it would be refused from the new status and
        # read as a failure. The activity's retry re-reads the issue and finds it moved.
        await self._call(
            "POST",
            self._path(f"issue/{quote(live.id, safe='')}/transitions"),
            json={"transition": {"id": chosen.id}},
            safe=False,
        )
        stored = await self.fetch_issue(live.id)
        if stored.state.strip().casefold() != wanted:
            raise self._api.error(
                TrackerErrorCategory.UNPROCESSABLE,
                f"{live.identifier}: transition {chosen.name!r} led to {stored.state!r}, "
                f"not {target_state!r} (a workflow post-function moved it on?)",
            )
        return stored

    async def add_comment(self, issue: Issue, body: str, marker: str) -> bool:
        marker_url(marker)  # refuses an empty marker before any request
        path = self._path(f"issue/{quote(issue.id, safe='')}/comment")
        for comment in await self._comments(path):
            obj = as_object(comment)
            if obj is not None and has_marker(obj.get("body"), marker):
                return False
        rendered: object = (
            markdown_to_adf(body, marker) if self._cloud else markdown_to_wiki(body, marker)
        )
        # Not resent in-process: a create whose answer was lost must not post twice.
        await self._call("POST", path, json={"body": rendered}, safe=False)
        return True

    # -- internals ---------------------------------------------------------------------------

    def _path(self, tail: str) -> str:
        return f"rest/api/{self._v}/{tail}"

    def _scope(self) -> str:
        if self._config.project_key is not None:
            return f"project {self._config.project_key}"
        return f"jql {self._config.jql!r}"

    def _in_scope(self, raw: object) -> bool:
        """By-id reads: an issue moved to another project is no longer the line's (its id
        stays, its key changes). A record without a project is left for decoding to judge."""
        if self._config.project_key is None:
            return True
        project = issue_project(raw)
        return project is None or project.casefold() == self._config.project_key.casefold()

    def _decode_strict(self, raw: object) -> Issue:
        try:
            return decode_issue(raw, self._config)
        except MalformedRecordError as error:
            raise self._api.error(TrackerErrorCategory.MALFORMED_ISSUE, str(error)) from None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: object = None,
        safe: bool,
    ) -> Reply:
        reply = await self._api.request(
            method, path, params=params, json=json, safe=safe, passthrough=_CLASSIFIED
        )
        if reply.status < 300:
            return reply
        raise self._status_error(method, path, reply)

    def _status_error(self, method: str, path: str, reply: Reply) -> TrackerError:
        status = reply.status
        detail = jira_message(reply.body) or f"HTTP {status}"
        where = f"{method} /{path} -> HTTP {status}: {detail}"
        if status == 403 and reply.headers.get("retry-after") is not None:
            return self._api.rate_limited(reply.headers, where)
        if status in (401, 403):
            return self._api.error(TrackerErrorCategory.AUTH, where)
        if status in (404, 410):
            return self._api.error(TrackerErrorCategory.NOT_FOUND, where)
        if status == 409:
            return self._api.error(TrackerErrorCategory.CONFLICT, where)
        return self._api.error(TrackerErrorCategory.UNPROCESSABLE, where)

    async def _search(self, jql: str) -> list[object]:
        return await (self._search_cloud(jql) if self._cloud else self._search_dc(jql))

    async def _search_cloud(self, jql: str) -> list[object]:
        issues: list[object] = []
        token: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            payload: Json = {"jql": jql, "maxResults": PAGE_SIZE, "fields": FIELDS}
            if token is not None:
                payload["nextPageToken"] = token
            reply = await self._call("POST", self._path("search/jql"), json=payload, safe=True)
            page, body = self._issues_page(reply, "search/jql")
            issues.extend(page)
            token = non_empty_str(body.get("nextPageToken"))
            if token is None:
                if body.get("isLast") is False:
                    raise self._api.error(
                        TrackerErrorCategory.MISSING_PAGINATION_CURSOR,
                        "search/jql: isLast is false without a nextPageToken",
                    )
                return issues
            if body.get("isLast") is True:
                return issues
            if token in seen:
                raise self._api.error(
                    TrackerErrorCategory.MISSING_PAGINATION_CURSOR,
                    "search/jql: the nextPageToken repeats",
                )
            seen.add(token)
        raise self._too_many_pages()

    async def _search_dc(self, jql: str) -> list[object]:
        issues: list[object] = []
        start = 0
        for _ in range(MAX_PAGES):
            payload: Json = {
                "jql": jql,
                "startAt": start,
                "maxResults": PAGE_SIZE,
                "fields": FIELDS,
            }
            reply = await self._call("POST", self._path("search"), json=payload, safe=True)
            page, body = self._issues_page(reply, "search")
            issues.extend(page)
            total = body.get("total")
            start += len(page)
            if not page or not isinstance(total, int) or start >= total:
                return issues
        raise self._too_many_pages()

    def _issues_page(self, reply: Reply, what: str) -> tuple[list[object], Json]:
        body = as_object(reply.body)
        page = as_list(body.get("issues")) if body is not None else None
        if body is None or page is None:
            raise self._api.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD, f"{what}: expected an object with issues"
            )
        return page, body

    def _too_many_pages(self) -> TrackerError:
        return self._api.error(
            TrackerErrorCategory.MISSING_PAGINATION_CURSOR,
            f"more than {MAX_PAGES} pages of issues; narrow the line's states or jql",
        )

    async def _bulk_fetch(self, ids: list[str]) -> list[object]:
        issues: list[object] = []
        for offset in range(0, len(ids), BULK_FETCH_SIZE):
            chunk = ids[offset : offset + BULK_FETCH_SIZE]
            reply = await self._call(
                "POST",
                self._path("issue/bulkfetch"),
                json={"issueIdsOrKeys": chunk, "fields": FIELDS},
                safe=True,
            )
            page, body = self._issues_page(reply, "issue/bulkfetch")
            failed = [e for e in map(as_object, as_list(body.get("issueErrors")) or []) if e]
            if failed:
                # Documented: a transient failure to read an issue, not its absence. A
                # by-id read is all or nothing: "could not read" must never pass for "gone".
                named = ", ".join(
                    f"{e.get('id')}: {e.get('errorMessage') or jira_message(e)}" for e in failed
                )
                raise self._api.error(
                    TrackerErrorCategory.API_STATUS,
                    f"issue/bulkfetch could not read some issues ({named[:MESSAGE_CHARS]})",
                    retryable=True,
                )
            issues.extend(page)
        return issues

    async def _get_each(self, ids: list[str]) -> list[object]:
        async def one(issue_id: str) -> object | None:
            try:
                return await self._get_issue(issue_id)
            except TrackerError as error:
                if error.category is TrackerErrorCategory.NOT_FOUND:
                    return None
                raise

        found = await gather_bounded([one(i) for i in ids], BY_ID_CONCURRENCY)
        return [raw for raw in found if raw is not None]

    async def _get_issue(self, issue_id: str) -> object:
        reply = await self._call(
            "GET",
            self._path(f"issue/{quote(issue_id, safe='')}"),
            params={"fields": ",".join(FIELDS)},
            safe=True,
        )
        return reply.body

    async def _transitions(self, issue: Issue) -> list[_Transition]:
        reply = await self._call(
            "GET", self._path(f"issue/{quote(issue.id, safe='')}/transitions"), safe=True
        )
        body = as_object(reply.body)
        entries = as_list(body.get("transitions")) if body is not None else None
        if entries is None:
            raise self._api.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD, f"{issue.identifier}: no transitions list"
            )
        transitions: list[_Transition] = []
        for entry in entries:
            obj = as_object(entry)
            if obj is None or obj.get("isAvailable") is False:
                continue
            transition_id = obj.get("id")
            if isinstance(transition_id, int) and not isinstance(transition_id, bool):
                transition_id = str(transition_id)
            transition_id = non_empty_str(transition_id)
            to = _name_of(obj.get("to"))
            if transition_id is None or to is None:
                continue
            transitions.append(_Transition(transition_id, non_empty_str(obj.get("name")) or to, to))
        return transitions

    async def _comments(self, path: str) -> list[object]:
        comments: list[object] = []
        start = 0
        for _ in range(MAX_COMMENT_PAGES):
            reply = await self._call(
                "GET",
                path,
                params={"startAt": start, "maxResults": COMMENT_PAGE_SIZE, "orderBy": "created"},
                safe=True,
            )
            body = as_object(reply.body)
            page = as_list(body.get("comments")) if body is not None else None
            if body is None or page is None:
                raise self._api.error(
                    TrackerErrorCategory.UNKNOWN_PAYLOAD, "comments: expected an object"
                )
            comments.extend(page)
            total = body.get("total")
            start += len(page)
            if not page or not isinstance(total, int) or start >= total:
                return comments
        raise self._api.error(
            TrackerErrorCategory.MISSING_PAGINATION_CURSOR,
            f"more than {MAX_COMMENT_PAGES} pages of comments",
        )
