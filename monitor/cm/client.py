"""The HTTP client for one CipherTrust Manager.

One aiohttp session per manager; a token renewed about a minute before it expires
(refresh grant first, password as fallback) and once more after a 401; per-request
timeout; retries with backoff and jitter for connection errors, timeouts, 5xx and 429
(``Retry-After`` honoured), never for other 4xx; at most ``max_concurrency`` requests
in flight; every answer validated before it is used. Errors are typed (``errors.py``)
and their messages never hold a token or a password.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import anyio
import yarl

from monitor.clock import Clock, SystemClock
from monitor.cm.auth import AUTH_PATH, Credentials, Token, parse_token
from monitor.cm.errors import (
    AuthError,
    CMError,
    HTTPStatusError,
    InvalidResponse,
    NotFound,
    RequestTimeout,
    TransportError,
)
from monitor.cm.parse import Page, decode_json, error_description, parse_job, parse_page
from monitor.cm.paths import job_path
from monitor.cm.tls import shared_context
from monitor.families import Family
from monitor.model import JobSnapshot
from monitor.neterrors import describe
from monitor.retry import backoff_delay, parse_retry_after

MAX_PAGES = 1000  # poll.max_pages: a list that never ends is a broken manager, not history


@dataclass(frozen=True, slots=True)
class ClientOptions:
    name: str
    url: str  # the part before /api
    credentials: Credentials
    verify_tls: bool = True
    ca_file: str | None = None
    timeout_seconds: float = 10.0
    max_concurrency: int = 4
    max_response_bytes: int = 16 * 1024 * 1024
    max_pages: int = MAX_PAGES  # one listing; beyond: InvalidResponse, nothing of it is used
    retries: int = 2  # further attempts after the first, for retryable failures
    backoff_initial: float = 0.5
    backoff_cap: float = 10.0


class _Unauthorized(Exception):
    """A 401 on an API call: log in again once, then retry."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _http_date(header: str | None) -> datetime | None:
    """An HTTP ``Date`` header -> aware UTC; None when absent or not a usable date."""
    if not header:
        return None
    try:
        stamp = parsedate_to_datetime(header)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def ssl_context(verify: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    """The TLS context for a client: one per distinct (verify, ca_file), shared (tls.py)."""
    return shared_context(verify, ca_file)


class ManagerClient:
    """Talks to one manager. Use as ``async with ManagerClient(...) as client``."""

    def __init__(
        self,
        options: ClientOptions,
        *,
        clock: Clock | None = None,
        on_response: Callable[[str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.options = options
        self._clock = clock or SystemClock()
        self._on_response = on_response or (lambda code: None)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._limit = anyio.Semaphore(options.max_concurrency)
        self._login_lock = anyio.Lock()
        self._token: Token | None = None
        self._session: aiohttp.ClientSession | None = None
        self._date: tuple[datetime, float] | None = None  # last Date header, monotonic then

    async def __aenter__(self) -> ManagerClient:
        connector = aiohttp.TCPConnector(
            ssl=ssl_context(self.options.verify_tls, self.options.ca_file),
            limit=self.options.max_concurrency,
        )
        self._session = aiohttp.ClientSession(
            base_url=None,
            connector=connector,
            trust_env=False,
            headers={"Accept": "application/json", "User-Agent": "cckm-monitor"},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- the API ------------------------------------------------------------------

    async def list_page(
        self, family: Family, *, skip: int, limit: int, filters: Mapping[str, str] | None = None
    ) -> Page:
        params = {"skip": str(skip), "limit": str(limit), **(filters or {})}
        raw = await self._call("GET", family.path, params=params, what=f"{family.source} list")
        return parse_page(raw, family, f"{family.source} list")

    async def list_jobs(
        self,
        family: Family,
        *,
        page_size: int,
        filters: Mapping[str, str] | None = None,
        stop: Callable[[Page], bool] | None = None,
        keep: Callable[[JobSnapshot], JobSnapshot] | None = None,
        first_page: int | None = None,
    ) -> list[JobSnapshot]:
        """Walk pages until a short or empty page, or ``stop(page)``; de-duplicate by id.

        ``first_page``: the first page asks for only that many jobs and each next page
        for ten times more, up to ``page_size`` (a walk that usually stops on its first
        page, the newest-first one, then parses a few jobs, not a hundred).

        ``total`` is not trusted: a manager that under-counts would truncate the walk, so
        only a short page ends it (a page as long as the smaller of the asked and the
        answered ``limit`` is full). At most ``max_pages`` pages: a list that never ends is
        an ``InvalidResponse`` and none of it is used.

        ``keep`` maps each job to the object to hold: the poller hands back the snapshot
        it already has when nothing changed, so that a cycle does not hold a second copy
        of every running job while it lists them (bench/memory.py).
        """
        seen: dict[str, JobSnapshot] = {}
        skip = 0
        pages = self.options.max_pages
        size = page_size if first_page is None else max(min(first_page, page_size), 1)
        for _ in range(pages):
            page = await self.list_page(family, skip=skip, limit=size, filters=filters)
            for job in page.jobs:
                if job.job_id not in seen:
                    seen[job.job_id] = job if keep is None else keep(job)
            if len(page.jobs) < min(page.limit or size, size):
                break
            if stop is not None and stop(page):
                break
            skip += len(page.jobs)
            size = min(size * 10, page_size)
        else:
            raise InvalidResponse(
                f"{family.source} list: more than {pages} pages (poll.max_pages); "
                "the listing is discarded"
            )
        return list(seen.values())

    def manager_now(self) -> datetime | None:
        """The manager's present by its own clock: its last ``Date`` header plus the time
        since (None before any answer with a valid one)."""
        if self._date is None:
            return None
        stamp, at = self._date
        return stamp + timedelta(seconds=max(self._clock.monotonic() - at, 0.0))

    def _saw_date(self, header: str | None) -> None:
        stamp = _http_date(header)
        if stamp is not None:
            self._date = (stamp, self._clock.monotonic())

    async def get_job(self, family: Family, job_id: str) -> JobSnapshot:
        """One job; ``NotFound`` when the manager answers 404."""
        path = job_path(family.path, job_id)  # InvalidJobId before anything is sent
        what = f"{family.source} job {job_id}"
        raw = await self._call("GET", path, what=what)
        job = parse_job(raw, family, what)
        if job.job_id != job_id:
            raise InvalidResponse(f"{what}: the answer is about job {job.job_id}")
        return job

    async def cancel_job(self, family: Family, job_id: str) -> JobSnapshot:
        path = job_path(family.path, job_id, "/cancel")  # InvalidJobId: nothing is sent
        what = f"{family.source} cancel {job_id}"
        raw = await self._call("POST", path, what=what)
        job = parse_job(raw, family, what)
        if job.job_id != job_id:
            raise InvalidResponse(f"{what}: the answer is about job {job.job_id}")
        return job

    async def login(self) -> None:
        """Get a token now (``jobs`` and ``cancel`` fail fast on bad credentials)."""
        await self._fresh_token(force=True)

    # --- plumbing -----------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        attempt = 0
        relogged = False
        while True:
            attempt += 1
            try:
                token = await self._fresh_token(force=False)
                return await self._send(
                    method, path, what=what, params=params, body=body, jwt=token.jwt
                )
            except _Unauthorized as exc:
                if relogged:
                    raise AuthError(
                        f"{what}: the manager refused a fresh token ({exc.detail})"
                    ) from None
                relogged = True
                attempt -= 1
                self._token = None
            except CMError as exc:
                if not exc.retryable or attempt > self.options.retries:
                    raise
                await self._clock.sleep(
                    backoff_delay(
                        attempt,
                        initial=self.options.backoff_initial,
                        cap=self.options.backoff_cap,
                        rng=self._rng,
                        retry_after=exc.retry_after,
                    )
                )

    async def _fresh_token(self, *, force: bool) -> Token:
        async with self._login_lock:
            token = self._token
            if token is not None and not force and token.fresh(self._clock.monotonic()):
                return token
            previous_refresh = token.refresh_token if token is not None else None
            failures: list[str] = []
            for grant in self.options.credentials.grants(previous_refresh):
                try:
                    raw = await self._send("POST", AUTH_PATH, what="login", body=grant, jwt=None)
                except _Unauthorized as exc:
                    failures.append(f"{grant['grant_type']} grant: {exc.detail}")
                    continue
                except HTTPStatusError as exc:
                    if exc.status is not None and exc.status < 500 and exc.status != 429:
                        failures.append(f"{grant['grant_type']} grant: {exc.message}")
                        continue
                    raise
                self._token = parse_token(raw, self._clock.monotonic(), previous_refresh)
                return self._token
            user = self.options.credentials.username
            raise AuthError(
                f"login to {self.options.name} as {user!r} was refused: " + "; ".join(failures)
            )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        jwt: str | None,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        if self._session is None:
            raise RuntimeError("ManagerClient used outside 'async with'")
        headers = {"Authorization": f"Bearer {jwt}"} if jwt else {}
        # ``path`` is already percent-encoded (paths.job_path): sent as it is, never
        # decoded nor normalised, so an id cannot climb into another family's path
        url = yarl.URL(str(yarl.URL(self.options.url)).rstrip("/") + path, encoded=True)
        async with self._limit:
            try:
                with anyio.fail_after(self.options.timeout_seconds):
                    async with self._session.request(
                        method, url, params=params, json=body, headers=headers
                    ) as resp:
                        payload = await self._read(resp, what)
                        status = resp.status
                        content_type = resp.content_type
                        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                        self._saw_date(resp.headers.get("Date"))
            except TimeoutError:
                self._on_response("timeout")
                raise RequestTimeout(
                    f"{what}: {self.options.url} timed out "
                    f"(no answer within {self.options.timeout_seconds:g} s)"
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                failure = describe(exc)  # in words: refused, name not resolved, TLS …
                self._on_response("connection")
                message = f"{what}: {self.options.url}: {failure.words}"
                if failure.tls_untrusted:
                    message += "; its certificate is not trusted: set ca_file"
                raise TransportError(message) from None
        self._on_response(str(status))
        return self._interpret(status, content_type, payload, retry_after, what)

    async def _read(self, resp: aiohttp.ClientResponse, what: str) -> bytes:
        cap = self.options.max_response_bytes
        if resp.content_length is not None and resp.content_length > cap:
            raise InvalidResponse(f"{what}: the answer is larger than {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > cap:
                raise InvalidResponse(f"{what}: the answer is larger than {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _interpret(
        self, status: int, content_type: str, payload: bytes, retry_after: float | None, what: str
    ) -> Any:
        if status == 401:
            raise _Unauthorized(error_description(payload) or "401 Unauthorized")
        if status >= 400:
            desc = error_description(payload)
            if desc is None and "html" in content_type:
                desc = "an HTML error page"
            message = f"{what}: the manager answered {status}" + (f": {desc}" if desc else "")
            cls = NotFound if status == 404 else HTTPStatusError
            raise cls(message, status=status, retry_after=retry_after, code_desc=desc)
        if "html" in content_type:
            raise InvalidResponse(f"{what}: the manager answered an HTML page, not JSON")
        return decode_json(payload, what)
