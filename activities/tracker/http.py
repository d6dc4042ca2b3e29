"""HTTP plumbing shared by the GitHub and Linear adapters: one place for timeouts, bounded
retries, conditional requests, rate-limit bookkeeping and the mapping of HTTP failures to
:class:`~activities.tracker.base.TrackerError` categories (docs/trackers.md#errors-both-adapters).

What lives here is provider-neutral. Each adapter brings what differs: its base URL and
headers, and a function that reads its rate-limit headers into a :class:`RateLimitSnapshot`.

Secrets: the token sits in the client's default headers only. It is sent to the configured
origin and nowhere else (a pagination link to another host is refused), every error message is
scrubbed, and nothing here logs headers or bodies.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar, cast

import httpx

from activities.jsontext import loads
from activities.secrets import Scrubber
from activities.tracker.base import TrackerError, TrackerErrorCategory

logger = logging.getLogger("jidoka.tracker")

REQUEST_TIMEOUT_S = 30.0
"""Per request: a tracker call never waits longer than this for an answer."""
SECONDARY_LIMIT_WAIT_S = 60.0
"""GitHub: a secondary rate limit without Retry-After or reset means 'wait at least a minute'."""
MESSAGE_CHARS = 300
"""Provider messages are quoted in errors, truncated: they end up in workflow histories."""
ERROR_CHARS = 1_000
"""The whole message of a TrackerError, whatever it quotes."""

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# Rate limits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimitSnapshot:
    """The provider's quota as last reported. The line's gate reads it before dispatching."""

    remaining: int | None
    limit: int | None
    reset_at: datetime | None
    observed_at: datetime
    resource: str | None = None
    """Which budget this is (GitHub ``core``/``search``; Linear ``requests``/``complexity``)."""

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def wait_s(self, now: datetime) -> float | None:
        """Seconds until the budget refills when it is exhausted; None when it is not."""
        if not self.exhausted or self.reset_at is None:
            return None
        return max(0.0, (self.reset_at - now).total_seconds())


RateLimitReader = Callable[[httpx.Headers, datetime], RateLimitSnapshot | None]


def parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def parse_epoch(value: str | None) -> datetime | None:
    """An epoch timestamp in seconds (GitHub) or milliseconds (Linear), told apart by size:
    seconds will not reach 10^11 before the year 5138."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    if number >= 1e11:
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After``: delay seconds or an HTTP date (RFC 9110, section 10.2.3)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    return max(0.0, seconds) if math.isfinite(seconds) else None


def rate_limit_wait_s(
    headers: httpx.Headers, snapshot: RateLimitSnapshot | None, now: datetime
) -> float:
    """How long to wait after a rate-limited response, in GitHub's documented order:
    ``Retry-After`` first, then the reset of an exhausted budget, else one minute."""
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    if retry_after is not None:
        return retry_after
    if snapshot is not None:
        wait = snapshot.wait_s(now)
        if wait is not None:
            # One extra second: reset times are whole seconds and clocks drift.
            return wait + 1.0
    return SECONDARY_LIMIT_WAIT_S


# --------------------------------------------------------------------------------------------
# Conditional requests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedReply:
    etag: str
    body: Any
    next_url: str | None


class ConditionalCache:
    """ETag -> body per URL, bounded (LRU). Share one between short-lived clients of the same
    tracker to keep the benefit: a 304 answer costs GitHub no rate limit."""

    def __init__(self, max_entries: int = 512) -> None:
        self._entries: OrderedDict[str, CachedReply] = OrderedDict()
        self._max = max_entries

    def get(self, url: str) -> CachedReply | None:
        entry = self._entries.get(url)
        if entry is not None:
            self._entries.move_to_end(url)
        return entry

    def put(self, url: str, entry: CachedReply) -> None:
        self._entries[url] = entry
        self._entries.move_to_end(url)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """In-process retries of *safe* requests on transport failures and 5xx answers.

    Kept short on purpose: the activity's own retry policy (visible in Temporal) is the real
    one; this only absorbs a blip so one reset connection does not fail a whole poll.
    """

    attempts: int = 3
    first_delay_s: float = 0.5
    max_delay_s: float = 4.0

    def delay_s(self, retry_number: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * (2 ** (retry_number - 1)))


@dataclass(frozen=True)
class Reply:
    status: int
    headers: httpx.Headers
    body: Any
    """Parsed JSON; None for an empty body."""
    next_url: str | None
    """``Link: <...>; rel="next"`` when present."""
    from_cache: bool = False


class ApiClient:
    """One provider endpoint, one token. Adapters call :meth:`request`; it returns a
    :class:`Reply` for 2xx (and for ``passthrough`` statuses) and raises ``TrackerError``
    for everything else."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        secrets: Sequence[str],
        read_rate_limit: RateLimitReader,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        cache: ConditionalCache | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = utc_now,
    ) -> None:
        self.provider = provider
        self._scrub = Scrubber(secrets)
        # The Scrubber ignores very short values; a token is a token whatever its length.
        self._secrets = [s for s in secrets if s]
        self._read_rate_limit = read_rate_limit
        self._retry = retry or RetryPolicy()
        self._cache = cache if cache is not None else ConditionalCache()
        self._sleep = sleep
        self._clock = clock
        self._rate_limit: RateLimitSnapshot | None = None
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers),
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S),
            transport=transport,
            # A redirect is an answer to classify (a transferred issue, a renamed repository),
            # and following it could carry the token to another host.
            follow_redirects=False,
        )
        self._origin = self._client.base_url.copy_with(path="/", query=None, fragment=None)

    def __repr__(self) -> str:
        return f"ApiClient(provider={self.provider!r}, base_url={str(self._client.base_url)!r})"

    @property
    def rate_limit(self) -> RateLimitSnapshot | None:
        return self._rate_limit

    async def aclose(self) -> None:
        await self._client.aclose()

    def scrub(self, text: str) -> str:
        text = self._scrub(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def error(
        self,
        category: TrackerErrorCategory,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> TrackerError:
        text = self.scrub(f"{self.provider}: {message}")
        if len(text) > ERROR_CHARS:  # a payload's value echoed in it can be megabytes
            text = text[:ERROR_CHARS] + "..."
        return TrackerError(
            category,
            text,
            retryable=retryable,
            retry_after_s=retry_after_s,
        )

    def rate_limited(self, headers: httpx.Headers, message: str) -> TrackerError:
        wait = rate_limit_wait_s(headers, self._rate_limit, self._clock())
        return self.error(
            TrackerErrorCategory.RATE_LIMITED,
            f"rate limited ({message}); retry in {wait:.0f}s",
            retryable=True,
            retry_after_s=wait,
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        safe: bool,
        conditional: bool = False,
        passthrough: Collection[int] = (),
    ) -> Reply:
        """Send one request. ``safe`` requests (reads, idempotent writes) are retried on
        transport failures and 5xx; others are sent once, since a lost answer to a create
        must not become two creates. ``conditional`` GETs send ``If-None-Match`` and turn a
        304 into the cached body."""
        try:
            request = self._client.build_request(method, url, params=params, json=json)
        except httpx.InvalidURL as exc:  # a next-page link the provider sent, say
            raise self.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD, f"{method} {url[:200]!r}: {exc}"
            ) from None
        self._check_origin(request.url)
        key = str(request.url)
        cached = self._cache.get(key) if conditional else None
        if cached is not None:
            request.headers["If-None-Match"] = cached.etag
        attempts = self._retry.attempts if safe else 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = await self._client.send(request)
            except httpx.TransportError as exc:
                failure = self.error(
                    TrackerErrorCategory.API_REQUEST,
                    f"{method} {request.url.path} failed: {type(exc).__name__}: {exc}",
                    retryable=True,
                )
                if last:
                    raise failure from None
                await self._backoff(attempt, failure)
                continue
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            self._observe(response.headers)
            logger.debug(
                "%s %s %s -> %d", self.provider, method, request.url.path, response.status_code
            )
            if response.status_code == 304 and cached is not None:
                # The ETag covers the body only: prefer a Link header sent with the 304.
                return Reply(
                    status=200,
                    headers=response.headers,
                    body=cached.body,
                    next_url=_next_link(response) or cached.next_url,
                    from_cache=True,
                )
            if 200 <= response.status_code < 300 or response.status_code in passthrough:
                return self._reply(request, response, content, key if conditional else None)
            failure = self._classify(method, request.url, response, content)
            # Rate limits are retryable too, but not here: their wait can be an hour, which is
            # the caller's (the line's gate, the activity's retry) to schedule.
            server_error = failure.retryable and failure.category is TrackerErrorCategory.API_STATUS
            if server_error and not last:
                await self._backoff(attempt, failure)
                continue
            raise failure
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def read_tail(
        self,
        url: str,
        *,
        keep_bytes: int,
        max_bytes: int,
        passthrough: Collection[int] = (),
    ) -> TailReply:
        """A ``GET`` of a body that may be huge (a CI job's log), streamed: only its last
        ``keep_bytes`` are ever held, and reading stops after ``max_bytes`` (``cut``). Retried
        like a safe :meth:`request`; a failure is classified from the first
        :data:`ERROR_BODY_BYTES` of its body, which is also what a ``passthrough`` status
        returns in ``tail``. Never conditional, never cached."""
        request = self._client.build_request("GET", url, headers={"Accept": "text/plain"})
        self._check_origin(request.url)
        attempts = self._retry.attempts
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = await self._client.send(request, stream=True)
                try:
                    self._observe(response.headers)
                    status = response.status_code
                    if 200 <= status < 300:
                        return await _stream_tail(response, keep_bytes, max_bytes)
                    content = await _stream_head(response, ERROR_BODY_BYTES)
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                failure = self.error(
                    TrackerErrorCategory.API_REQUEST,
                    f"GET {request.url.path} failed: {type(exc).__name__}: {exc}",
                    retryable=True,
                )
                if last:
                    raise failure from None
                await self._backoff(attempt, failure)
                continue
            logger.debug("%s GET %s -> %d", self.provider, request.url.path, status)
            if status in passthrough:
                return TailReply(status=status, headers=response.headers, tail=content)
            failure = self._classify("GET", request.url, response, content)
            server_error = failure.retryable and failure.category is TrackerErrorCategory.API_STATUS
            if server_error and not last:
                await self._backoff(attempt, failure)
                continue
            raise failure
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- internals ---------------------------------------------------------------------------

    def _check_origin(self, url: httpx.URL) -> None:
        if (url.scheme, url.host, url.port) != (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        ):
            raise self.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD,
                f"refusing to send the token to another origin: {url.scheme}://{url.host}",
            )

    async def _backoff(self, attempt: int, failure: TrackerError) -> None:
        delay = self._retry.delay_s(attempt)
        logger.info("%s; retrying in %.1fs", failure, delay)
        await self._sleep(delay)

    def _observe(self, headers: httpx.Headers) -> None:
        snapshot = self._read_rate_limit(headers, self._clock())
        if snapshot is not None:
            self._rate_limit = snapshot

    def _reply(
        self,
        request: httpx.Request,
        response: httpx.Response,
        content: bytes,
        cache_key: str | None,
    ) -> Reply:
        body: Any = None
        if content.strip():
            try:
                body = loads(content)
            except (ValueError, RecursionError):  # RecursionError: nested too deeply
                if 200 <= response.status_code < 300:
                    raise self.error(
                        TrackerErrorCategory.UNKNOWN_PAYLOAD,
                        f"{request.method} {request.url.path}: the answer is not JSON",
                    ) from None
        next_url = _next_link(response)
        etag = response.headers.get("etag")
        if cache_key is not None and etag and 200 <= response.status_code < 300:
            self._cache.put(cache_key, CachedReply(etag=etag, body=body, next_url=next_url))
        return Reply(
            status=response.status_code,
            headers=response.headers,
            body=body,
            next_url=next_url,
        )

    def _classify(
        self, method: str, url: httpx.URL, response: httpx.Response, content: bytes
    ) -> TrackerError:
        status = response.status_code
        text = content.decode("utf-8", "replace")
        detail = _provider_message(text) or response.reason_phrase or "no message"
        where = f"{method} {url.path} -> HTTP {status}: {detail}"
        if status in (403, 429) and _looks_rate_limited(status, response.headers, text):
            return self.rate_limited(response.headers, where)
        if status in (401, 403):
            return self.error(TrackerErrorCategory.AUTH, where)
        if status in (404, 410) or status in (301, 308):
            # 301/308: GitHub's answer for a transferred issue or a renamed repository: the
            # thing is no longer where this line looks for it.
            return self.error(TrackerErrorCategory.NOT_FOUND, where)
        if status == 409:
            return self.error(TrackerErrorCategory.CONFLICT, where)
        if status == 422:
            return self.error(TrackerErrorCategory.UNPROCESSABLE, where)
        return self.error(TrackerErrorCategory.API_STATUS, where, retryable=status >= 500)


@dataclass(frozen=True)
class TailReply:
    """What :meth:`ApiClient.read_tail` kept of a body."""

    status: int
    headers: httpx.Headers
    tail: bytes
    """The last bytes read (at most ``keep_bytes``); for a passthrough status, the body's
    first bytes."""
    size: int = 0
    """Bytes read in all."""
    cut: bool = False
    """Reading stopped at ``max_bytes``: ``tail`` is not the body's end."""


ERROR_BODY_BYTES = 64 * 1024
"""What is read of an error's body when the body itself is streamed."""


async def _stream_tail(response: httpx.Response, keep_bytes: int, max_bytes: int) -> TailReply:
    kept = bytearray()
    size = 0
    cut = False
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        kept += chunk
        if len(kept) > keep_bytes:
            del kept[: len(kept) - keep_bytes]
        if size >= max_bytes:
            cut = True
            break
    return TailReply(
        status=response.status_code, headers=response.headers, tail=bytes(kept), size=size, cut=cut
    )


async def _stream_head(response: httpx.Response, limit: int) -> bytes:
    head = bytearray()
    async for chunk in response.aiter_bytes():
        head += chunk[: limit - len(head)]
        if len(head) >= limit:
            break
    return bytes(head)


def _looks_rate_limited(status: int, headers: httpx.Headers, body_text: str) -> bool:
    """A 403 is a permission problem unless it carries a rate-limit sign (GitHub documents
    403 for both); a 429 always is a rate limit."""
    if status == 429 or headers.get("retry-after") is not None:
        return True
    if parse_int(headers.get("x-ratelimit-remaining")) == 0:
        return True
    lowered = body_text.lower()
    return "rate limit" in lowered or "abuse detection" in lowered


def _provider_message(text: str) -> str:
    """The human part of an error body: GitHub's ``message`` with its ``errors[]`` details
    (a 422 says *what* failed validation there), or GraphQL's ``errors[].message``."""
    try:
        body = as_object(loads(text))
    except (ValueError, RecursionError):
        return text.strip()[:MESSAGE_CHARS]
    if body is None:
        return ""
    details: list[str] = []
    for entry in as_list(body.get("errors")) or []:
        error = as_object(entry)
        if error is None:
            continue
        detail = error.get("message") or error.get("code")
        if isinstance(detail, str) and detail:
            details.append(detail)
    message = body.get("message")
    if isinstance(message, str) and message:
        text = f"{message} ({'; '.join(details)})" if details else message
    else:
        text = "; ".join(details)
    return text[:MESSAGE_CHARS]


def _next_link(response: httpx.Response) -> str | None:
    link = response.links.get("next")
    return link.get("url") if link else None


# --------------------------------------------------------------------------------------------
# Payload helpers shared by both adapters (normalisation: docs/trackers.md)
# --------------------------------------------------------------------------------------------


def parse_timestamp(value: object) -> datetime | None:
    """RFC 3339 -> aware datetime; anything unusable -> None (the field is nullable)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    # RFC 3339 always carries an offset; a naive value is read as UTC rather than local time.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def clean_labels(names: Sequence[object]) -> list[str]:
    """Trimmed, lowercased, blanks dropped, duplicates removed, first-seen order kept."""
    seen: dict[str, None] = {}
    for name in names:
        if isinstance(name, str) and name.strip():
            seen.setdefault(name.strip().lower(), None)
    return list(seen)


def non_empty_str(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def as_object(value: object) -> dict[str, object] | None:
    """A JSON object, or None: payloads are untrusted until each field is checked."""
    return cast("dict[str, object]", value) if isinstance(value, dict) else None


def as_list(value: object) -> list[object] | None:
    return cast("list[object]", value) if isinstance(value, list) else None


T = TypeVar("T")


async def gather_bounded(jobs: Sequence[Awaitable[T]], limit: int) -> list[T]:
    """Run ``jobs`` at most ``limit`` at a time (providers punish bursts of concurrent
    requests); the first failure cancels the rest, so a read of many is all or nothing."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    tasks = [asyncio.ensure_future(run(job)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
