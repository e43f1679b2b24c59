"""The simulated manager's jobs and their life cycle, driven lazily by an injected clock.

Nothing happens on a timer. Every job holds its scheduled transitions in one heap;
``advance()`` (called before answering any request, and by a light background task)
applies every transition that is due, in time order, each recorded at its scheduled
time. So a test that moves a fake clock sees exactly what a real run would have shown,
and the same seed with the same requests gives the same transitions.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.families import FAMILIES
from monitor.model import is_scope_failure, normalise_status, parse_timestamp
from monitor.simulator.config import LiveSettings, SimConfig, seeded
from monitor.simulator.history import OUTCOMES, HistoryBlock
from monitor.simulator.jobs import COMPLETED, FAILED, RUNNING, UPDATE_LAG, Job
from monitor.simulator.scopes import Catalog, ScopeSet, failure_text, success_text
from monitor.simulator.store import SourceJobs
from monitor.simulator.wire import rfc3339

_SCOPE, _ABORT_END, _SELF_CANCEL, _AUTO_START, _CALLBACK = range(5)
CREATE_LAG = 0.003481  # a new job's updatedAt trails its createdAt (seed 002: 3.5 ms)
HISTORY_GAP = 300.0  # the newest history job was created this long before start

# (seconds after start or None for "never", final detailed_status text) per scope
Plan = list[tuple[float | None, str]]


@dataclass(frozen=True, slots=True)
class Transition:
    """One ground-truth change, as ``GET /sim/v1/transitions`` reports it."""

    seq: int
    at: float
    source: str
    job_id: str
    kind: str  # created | scope_finished | abort_requested | finished | deleted
    scope: str | None
    status: str
    abort: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": rfc3339(self.at),
            "source": self.source,
            "job_id": self.job_id,
            "kind": self.kind,
            "scope": self.scope,
            "status": self.status,
            "abort": self.abort,
        }


class JobError(Exception):
    """A request the job store refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SimState:
    """Every source's jobs, the transition heap and the ground-truth log."""

    def __init__(self, config: SimConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.settings = LiveSettings.from_config(config)
        seed = config.seed
        self._user_rng = seeded(seed, "user")  # jobs started/scripted by requests
        self._auto_rng = seeded(seed, "auto")  # jobs that start by themselves
        catalog_rng = seeded(seed, "catalog")
        self._heap: list[tuple[float, int, int, Job | None, int]] = []
        self._heap_seq = itertools.count()
        self._job_seq = itertools.count()
        self._auto_generation = 0
        self._callbacks: dict[int, Callable[[float], None]] = {}
        self._callback_ids = itertools.count()
        self.transitions: list[Transition] = []
        now = clock()
        self.sources: dict[str, SourceJobs] = {}
        for name in config.sources:
            family = FAMILIES[name]
            catalog = Catalog(family, catalog_rng)
            history = None
            if config.history:
                history = HistoryBlock(family, catalog, config.history, now - HISTORY_GAP, seed)
            self.sources[name] = SourceJobs(family, catalog, history)
        self._prestart(now, seeded(seed, "running"))
        self._schedule_auto(now)

    # --- the clock ----------------------------------------------------------------------

    def advance(self) -> float:
        """Apply every transition due by now; returns now."""
        now = self.clock()
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, kind, job, arg = heapq.heappop(heap)
            self._apply(due, kind, job, arg)
        return now

    def _at(self, due: float, kind: int, job: Job | None = None, arg: int = 0) -> None:
        heapq.heappush(self._heap, (due, next(self._heap_seq), kind, job, arg))

    def call_at(self, due: float, action: Callable[[float], None]) -> None:
        """Call ``action(due)`` once the clock passes ``due``, in time order with every
        job transition (the scheduler's runs fire this way)."""
        key = next(self._callback_ids)
        self._callbacks[key] = action
        self._at(due, _CALLBACK, None, key)

    def _apply(self, due: float, kind: int, job: Job | None, arg: int) -> None:
        if kind == _CALLBACK:
            self._callbacks.pop(arg)(due)
            return
        if kind == _AUTO_START:
            if arg == self._auto_generation:
                self._auto_start(due)
            return
        assert job is not None
        if job.deleted or not job.running:
            return
        if kind == _SCOPE:
            if not job.abort:  # an aborting job stops working on its scopes
                self._finish_scope(job, arg, due)
        elif kind == _ABORT_END:
            self._finish(job, due, COMPLETED)
        elif kind == _SELF_CANCEL and not job.abort:
            self._request_abort(job, due, self._auto_rng)

    # --- requests -----------------------------------------------------------------------

    def source(self, name: str) -> SourceJobs:
        src = self.sources.get(name)
        if src is None:
            raise JobError(404, f"source {name!r} is not simulated")
        return src

    def get(self, source: str, job_id: str) -> Job:
        job = self.source(source).find(job_id)
        if job is None:
            raise JobError(404, "Resource not found")
        return job

    def start(self, source: str, body: Mapping[str, Any]) -> Job:
        """``POST <path>``: ``ValueError`` when the body names no scope."""
        now = self.advance()
        src = self.source(source)
        scope = src.catalog.from_body(body, self._user_rng)
        return self._launch(src, scope, now, now, self._user_rng)

    def start_at(
        self,
        source: str,
        body: Mapping[str, Any],
        at: float,
        rng: random.Random,
        scope_field: str | None = None,
    ) -> Job:
        """A job started at ``at`` by the scheduler (no ``advance``: called from one)."""
        src = self.source(source)
        scope = src.catalog.from_body(body, rng, scope_field)
        return self._launch(src, scope, at, at, rng)

    def cancel(self, source: str, job_id: str) -> Job:
        now = self.advance()
        job = self.get(source, job_id)
        if not job.running:
            raise JobError(409, "job is not in progress")
        if job.abort:
            raise JobError(409, "job is already being cancelled")
        self._request_abort(job, now, self._user_rng)
        return job

    def delete(self, source: str, job_id: str) -> Job:
        now = self.advance()
        job = self.source(source).delete(job_id)
        if job is None:
            raise JobError(404, "Resource not found")
        self._log(now, job, "deleted", None, job.status)
        return job

    def scripted(self, spec: Mapping[str, Any]) -> Job:
        """``POST /sim/v1/jobs``: a job whose scopes end when and how the test says."""
        now = self.advance()
        src = self.source(str(spec.get("source")))
        scopes = spec.get("scopes") or []
        hang = spec.get("hang") is True
        status_text = spec.get("status_text", RUNNING)
        if not isinstance(status_text, str) or not status_text:
            raise ValueError("status_text must be a non-empty string")
        if not isinstance(scopes, list) or not all(isinstance(s, dict) for s in scopes):
            raise ValueError("scopes must be a list of objects")
        values = spec.get("scope_values")
        if values is not None and not (
            isinstance(values, list) and all(isinstance(v, str) for v in values)
        ):
            raise ValueError("scope_values must be a list of strings")
        created = now
        if spec.get("created_at") is not None:
            created = parse_timestamp(str(spec["created_at"])).timestamp()
        if scopes:
            keys = [str(s.get("key", "")) for s in scopes]
            if not all(keys) or len(set(keys)) != len(keys):
                raise ValueError("every scope needs a distinct non-empty key")
            plan: Plan = [self._scripted_scope(src, s, hang) for s in scopes]
            scope = src.catalog.from_keys(keys, values)
        else:
            scope = src.catalog.pick(self._user_rng)
            plan = self._draw_plan(src, scope, self._user_rng)
            if hang:
                plan = [(None, text) for _, text in plan]
        return self._launch(src, scope, created, now, self._user_rng, plan, status_text)

    def _scripted_scope(
        self, src: SourceJobs, spec: Mapping[str, Any], hang: bool
    ) -> tuple[float | None, str]:
        # no after_seconds: a random time, as for any job; null: never
        after = spec.get("after_seconds", self._user_rng.uniform(*self.config.scope_seconds))
        if after is not None and (
            isinstance(after, bool) or not isinstance(after, int | float) or after < 0
        ):
            raise ValueError("after_seconds must be a non-negative number or null")
        result = spec.get("result", "success")
        if not isinstance(result, str) or not result:
            raise ValueError("result must be 'success' or a failure message")
        text = success_text(src.family) if result == "success" else result
        return (None if hang or after is None else float(after), text)

    def update_settings(self, values: Mapping[str, Any]) -> dict[str, float]:
        now = self.advance()
        before = self.settings.job_rate
        self.settings.update(dict(values))
        if self.settings.job_rate != before:
            self._auto_generation += 1  # forget the pending self-start
            self._schedule_auto(now)
        return self.settings.as_dict()

    # --- life cycle -----------------------------------------------------------------------

    def _draw_plan(self, src: SourceJobs, scope: ScopeSet, rng: random.Random) -> Plan:
        low, high = self.config.scope_seconds
        plan: Plan = []
        for key in scope.keys:
            after = rng.uniform(low, high)
            fails = rng.random() < self.settings.failure_probability
            choice = rng.randrange(256)
            text = failure_text(src.family, key, choice) if fails else success_text(src.family)
            plan.append((after, text))
        return plan

    def _launch(
        self,
        src: SourceJobs,
        scope: ScopeSet,
        created: float,
        base: float,
        rng: random.Random,
        plan: Plan | None = None,
        status_text: str = RUNNING,
    ) -> Job:
        """Create a running job; scope ``i`` ends at ``base + plan[i][0]``."""
        job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        nanos = rng.random() < 0.25 or src.family.source == "external_cm"
        job = Job(
            seq=next(self._job_seq),
            job_id=job_id,
            family=src.family,
            scope=scope,
            created=created,
            status=status_text,
            nanos=nanos,
            ns_salt=rng.randrange(1000),
        )
        if plan is None:
            plan = self._draw_plan(src, scope, rng)
        job.updated = created + CREATE_LAG
        job.planned = [text for _, text in plan]
        job.pending = len(plan)
        src.add(job)
        self._log(created, job, "created", None, job.status)
        for index, (after, _) in enumerate(plan):
            if after is not None:
                self._at(base + after, _SCOPE, job, index)
        if not plan:
            self._finish(job, base, COMPLETED)
        return job

    def _finish_scope(self, job: Job, index: int, at: float) -> None:
        assert job.planned is not None
        text = job.planned[index] or success_text(job.family)
        job.results[index] = text
        job.updated = max(at, job.updated)
        job.pending -= 1
        self._log(at, job, "scope_finished", job.scope.keys[index], text)
        if job.pending == 0:
            failed = any(is_scope_failure(result) for result in job.results)
            self._finish(job, at, FAILED if failed else COMPLETED)

    def _finish(self, job: Job, at: float, status: str) -> None:
        job.status = status
        job.completed = at
        job.updated = at + UPDATE_LAG
        self.sources[job.family.source].finished(job)
        self._log(at, job, "finished", None, status)

    def _request_abort(self, job: Job, at: float, rng: random.Random) -> None:
        job.abort = True
        job.updated = max(at, job.updated)
        self._log(at, job, "abort_requested", None, job.status)
        self._at(at + rng.uniform(*self.config.abort_seconds), _ABORT_END, job)

    def _log(self, at: float, job: Job, kind: str, scope: str | None, status: str) -> None:
        seq = len(self.transitions) + 1
        entry = Transition(seq, at, job.family.source, job.job_id, kind, scope, status, job.abort)
        self.transitions.append(entry)

    # --- jobs that start by themselves ------------------------------------------------------

    def _prestart(self, now: float, rng: random.Random) -> None:
        """``running`` jobs already under way at start, spread over the sources."""
        low = self.config.scope_seconds[0]
        names = list(self.sources)
        for number in range(self.config.running):
            src = self.sources[names[number % len(names)]]
            created = now - rng.uniform(0.0, min(30.0, low / 2))
            self._launch(src, src.catalog.pick(rng), created, created, rng)

    def _schedule_auto(self, now: float) -> None:
        rate = self.settings.job_rate
        if rate > 0:
            self._at(
                now + self._auto_rng.expovariate(rate / 60.0),
                _AUTO_START,
                None,
                self._auto_generation,
            )

    def _auto_start(self, at: float) -> None:
        rng = self._auto_rng
        src = self.sources[rng.choice(list(self.sources))]
        scope = src.catalog.pick(rng)
        plan = self._draw_plan(src, scope, rng)
        job = self._launch(src, scope, at, at, rng, plan)
        # Always draw, so that changing the probability does not shift later draws.
        cancels = rng.random() < self.settings.cancel_probability
        midway = rng.uniform(0.2, 0.8)
        if cancels:  # stop it about halfway to its first scope's end
            first = min(after for after, _ in plan if after is not None)
            self._at(at + first * midway, _SELF_CANCEL, job)
        self._schedule_auto(at)

    # --- numbers ------------------------------------------------------------------------------

    def job_counts(self) -> dict[str, int]:
        """Jobs by what they are now: in_progress, completed, failed, aborted (abort true)."""
        counts = {RUNNING: 0, COMPLETED: 0, FAILED: 0, "aborted": 0}
        for src in self.sources.values():
            if src.history is not None:
                for code, number in src.history.status_counts().items():
                    status, abort = OUTCOMES[code]
                    counts["aborted" if abort else status] += number
            for job in src.live:
                if job.running:
                    counts[RUNNING] += 1
                elif job.abort:
                    counts["aborted"] += 1
                else:
                    word = normalise_status(job.status)
                    counts[word] = counts.get(word, 0) + 1
        return counts
