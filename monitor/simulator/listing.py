"""``GET <path>?skip=&limit=&...``: filters, sort and pages over one source's jobs.

Parameters: ``skip`` (default 0) and ``limit`` (default 10, larger values clamped to
``SimConfig.max_limit``; 0 answers only ``total``) must be non-negative integers, else
400. Filters: ``id``, ``overall_status`` (compared normalised, so ``in_progress`` also
matches a job spelled ``in progress``), and the family's scope filter (``kms``,
``key_rings``, ``vaults``...) matching any scope of the job; each may repeat or hold
comma-separated values.

Order: ``sort`` is comma-separated fields among createdAt, updatedAt, id and
overall_status, a leading ``-`` for descending. Without ``sort`` the order is newest
first (as seed 004 shows). Ties fall back to creation order in the direction of the
first sort field, so every order is total and pages never overlap.

The unfiltered newest/oldest-first page costs O(limit + log n) even over 100,000 history
rows; ``overall_status=in_progress`` costs O(running); other filters and sort fields
scan the source once.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from multidict import MultiMapping

from monitor.model import ACTIVE_STATUSES, normalise_status
from monitor.simulator.config import DEFAULT_LIMIT
from monitor.simulator.history import OUTCOMES, HistoryBlock
from monitor.simulator.jobs import Job
from monitor.simulator.store import SourceJobs

SORT_FIELDS = {
    "createdAt": "createdAt",
    "created_at": "createdAt",
    "updatedAt": "updatedAt",
    "updated_at": "updatedAt",
    "id": "id",
    "overall_status": "overall_status",
}

Ref = Job | int  # a live job, or a history row


@dataclass
class ListQuery:
    skip: int = 0
    limit: int = DEFAULT_LIMIT
    ids: set[str] = field(default_factory=set)
    statuses: set[str] = field(default_factory=set)  # normalised
    scopes: set[str] = field(default_factory=set)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)

    @property
    def filtered(self) -> bool:
        return bool(self.ids or self.statuses or self.scopes)


def query_values(query: MultiMapping[str], name: str) -> set[str]:
    return {part.strip() for raw in query.getall(name, []) for part in raw.split(",")} - {""}


def query_count(query: MultiMapping[str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not text.isdigit():
        raise ValueError(f"{name} must be a non-negative integer, got {raw!r}")
    return int(text)


def parse_query(query: MultiMapping[str], filter_field: str, max_limit: int) -> ListQuery:
    """The list parameters; ``ValueError`` (answered 400) for a bad skip, limit or sort."""
    parsed = ListQuery(
        skip=query_count(query, "skip", 0),
        limit=min(query_count(query, "limit", DEFAULT_LIMIT), max_limit),
        ids=query_values(query, "id"),
        statuses={normalise_status(word) for word in query_values(query, "overall_status")},
        scopes=query_values(query, filter_field),
    )
    for part in ",".join(query.getall("sort", [])).split(","):
        name = part.strip().lstrip("+")
        if not name:
            continue
        descending = name.startswith("-")
        key = SORT_FIELDS.get(name.lstrip("-"))
        if key is None:
            raise ValueError(f"cannot sort by {name.lstrip('-')!r}")
        parsed.sort.append((key, descending))
    return parsed


class Selection:
    """The jobs a query selects, in order; ``page(skip, n)`` materialises only a slice."""

    def __init__(self, src: SourceJobs, query: ListQuery) -> None:
        self._src = src
        self._history = src.history
        sort = query.sort or [("createdAt", True)]
        self._fast = not query.filtered and len(sort) == 1 and sort[0][0] == "createdAt"
        self._descending = sort[0][1]
        self._refs: list[Ref] = [] if self._fast else self._select(query, sort)

    @property
    def total(self) -> int:
        return self._src.total if self._fast else len(self._refs)

    def page(self, start: int, count: int) -> list[Job]:
        end = min(start + count, self.total)
        if start >= end:
            return []
        if not self._fast:
            return [self._job(ref) for ref in self._refs[start:end]]
        if self._descending:
            return self._newest(start, end)
        total = self.total
        return self._newest(total - end, total - start)[::-1]

    def _job(self, ref: Ref) -> Job:
        if isinstance(ref, Job):
            return ref
        assert self._history is not None
        return self._history.job(ref)

    # --- the fast path: live jobs merged with history rows, newest first -------------------

    def _newest(self, start: int, end: int) -> list[Job]:
        """Positions [start, end) of the newest-first order, without touching the rest."""
        live, history = self._src.live, self._history
        if history is None:
            return [live[len(live) - 1 - i] for i in range(start, end)]
        alive = history.alive

        def rank(i: int) -> int:  # position of the i-th newest live job
            return i + alive - history.count_alive_le(live[len(live) - 1 - i].created)

        low, high = 0, len(live)
        while low < high:  # how many live jobs come before ``start``
            middle = (low + high) // 2
            if rank(middle) < start:
                low = middle + 1
            else:
                high = middle
        i, rows_before = low, start - low
        next_rank = rank(i) if i < len(live) else -1
        out: list[Job] = []
        for position in range(start, end):
            if position == next_rank:
                out.append(live[len(live) - 1 - i])
                i += 1
                next_rank = rank(i) if i < len(live) else -1
            else:
                out.append(history.job(history.nth_alive(alive - 1 - rows_before)))
                rows_before += 1
        return out

    # --- the general path -----------------------------------------------------------------

    def _select(self, query: ListQuery, sort: list[tuple[str, bool]]) -> list[Ref]:
        src, history = self._src, self._history
        if query.ids:
            live: Iterable[Job] = (src.by_id[i] for i in query.ids if i in src.by_id)
            rows: Iterable[int] = ()
            if history is not None:
                found = (history.index_of(i) for i in query.ids)
                rows = sorted(r for r in found if r is not None)
        elif query.statuses and query.statuses <= ACTIVE_STATUSES:
            live, rows = src.running.values(), ()  # history jobs never run
        else:
            live, rows = src.live, history.rows() if history is not None else ()
        wanted = _predicate(query)
        matching: list[Job] = [job for job in live if wanted(job)]
        matching.sort(key=_created_order)
        chosen_live: list[Ref] = list(matching)
        chosen_rows: list[Ref] = []
        if history is not None:
            chosen_rows.extend(_filter_rows(history, query, rows))
        refs: list[Ref] = list(heapq.merge(chosen_rows, chosen_live, key=self._created_key))
        if sort[0][1]:
            refs.reverse()
        if len(sort) == 1 and sort[0][0] == "createdAt":
            return refs  # already in that order
        for name, descending in reversed(sort):
            refs.sort(key=self._sort_key(name), reverse=descending)
        return refs

    def _created_key(self, ref: Ref) -> tuple[float, int]:
        if isinstance(ref, Job):
            return (ref.created, ref.seq)
        assert self._history is not None
        return (self._history.created[ref], ref - self._history.count)

    def _sort_key(self, name: str) -> Callable[[Ref], Any]:
        history = self._history
        if name == "createdAt":
            return self._created_key

        def key(ref: Ref) -> Any:
            if isinstance(ref, Job):
                job = ref
            elif name == "updatedAt":
                assert history is not None
                return history.updated_of(ref)
            elif name == "overall_status":
                assert history is not None
                return history.status_of(ref)
            else:
                job = self._job(ref)
            if name == "updatedAt":
                return job.updated
            return job.job_id if name == "id" else job.status

        return key


def _created_order(job: Job) -> tuple[float, int]:
    return (job.created, job.seq)


def _predicate(query: ListQuery) -> Callable[[Job], bool]:
    def wanted(job: Job) -> bool:
        if query.ids and job.job_id not in query.ids:
            return False
        if query.statuses and normalise_status(job.status) not in query.statuses:
            return False
        if query.scopes:
            names = query.scopes
            if not any(v in names for v in job.scope.values) and not any(
                k in names for k in job.scope.keys
            ):
                return False
        return True

    return wanted


def _filter_rows(history: HistoryBlock, query: ListQuery, rows: Iterable[int]) -> Iterable[int]:
    codes = set(range(len(OUTCOMES)))
    if query.statuses:
        codes = {c for c, (word, _) in enumerate(OUTCOMES) if word in query.statuses}
    combos = set(range(len(history.pool)))
    if query.scopes:
        combos = {
            number
            for number, scope in enumerate(history.pool)
            if query.scopes & set(scope.values) or query.scopes & set(scope.keys)
        }
    outcome, combo = history.outcome, history.combo
    if len(codes) == len(OUTCOMES) and len(combos) == len(history.pool):
        return rows
    return (r for r in rows if outcome[r] in codes and combo[r] in combos)
