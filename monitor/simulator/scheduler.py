"""The manager's scheduler: job configurations whose runs fire on cron, on the injected clock.

Like the jobs (state.py), nothing runs on a timer: each enabled configuration keeps its
next due time in the job store's transition heap (``SimState.call_at``), so a test that
moves a fake clock by an hour sees every run that would have fired, each stamped with its
due minute, interleaved in time order with the jobs' own transitions.

A run is ``scheduled`` at its due time; ``START_LAG`` later it starts: a
``cckm_synchronization`` run starts a job of the mapped source (jobconfigs.SYNC_CLOUDS)
with the configuration's scope and from then on shows that job's outcome (in_progress,
completed, failed, aborted); a run of another operation completes a few seconds later.

Faults (control API): ``stalled`` (no run appears at all; a run-now waits, ``scheduled``),
``skip`` (a due run never appears) and ``fail_before_start`` (the run ends ``failed``
without a job), each for ``count`` runs or until cleared, optionally only for one
configuration or one processing node.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.model import normalise_status, parse_timestamp
from monitor.simulator.config import SimConfig, seeded
from monitor.simulator.cron import next_due, previous_due
from monitor.simulator.jobconfigs import (
    CLOUD_OF_SOURCE,
    SYNC,
    SYNC_CLOUDS,
    ConfigSpec,
    JobConfig,
    check_body,
    patched,
)
from monitor.simulator.jobs import ABORTED, COMPLETED, FAILED, RUNNING, Job
from monitor.simulator.state import JobError, SimState
from monitor.simulator.wire import rfc3339

SCHEDULED = "scheduled"
RUN_STATUSES = (SCHEDULED, RUNNING, COMPLETED, FAILED, ABORTED)
NODES = ("kylo-node-1", "kylo-node-2")  # where a run_on: any run may execute
START_LAG = (0.1, 2.0)  # seconds from a run's due time to its job's creation
OTHER_SECONDS = (1.0, 10.0)  # how long a run of another operation takes
FAULT_KINDS = ("skip", "fail_before_start")
MISSED_LOG = 10_000  # due runs that never appeared, kept for GET /sim/v1/scheduler

# (run_at, label) of the schedules ``SimConfig.schedules`` pre-creates, in turn
PRESETS = (
    ("*/5 * * * *", "every-5m"),
    ("0 * * * *", "hourly"),
    ("*/10 * ? * *", "every-10m"),
    ("15 */2 * * mon-sun", "every-2h"),
    ("*/15 * * jan-dec ?", "every-15m"),
    ("30 * ? * *", "hourly-30"),
)


class Run:
    """One scheduler run; while it has a job, its status is the job's outcome."""

    __slots__ = ("config_id", "created", "id", "job", "node", "seq", "spec", "status")

    def __init__(
        self, run_id: str, seq: int, config_id: str, spec: ConfigSpec, created: float, node: str
    ) -> None:
        self.id = run_id
        self.seq = seq
        self.config_id = config_id
        self.spec = spec  # the configuration as it was when the run fired
        self.created = created
        self.node = node
        self.status = SCHEDULED
        self.job: Job | None = None

    @property
    def current(self) -> str:
        job = self.job
        if job is None:
            return self.status
        if job.running:
            return RUNNING
        if job.abort:
            return ABORTED
        word = normalise_status(job.status)
        return word if word in (FAILED, ABORTED) else COMPLETED

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.spec.name,
            "operation": self.spec.operation,
            "status": self.current,
            "createdAt": rfc3339(self.created),
            "processing_node": self.node,
            "job_config_id": self.config_id,
        }


@dataclass
class RunFault:
    """A queued scheduler fault; ``count`` None lasts until cleared."""

    id: int
    kind: str
    count: int | None
    job_config_id: str | None
    node: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "count": self.count,
            "job_config_id": self.job_config_id,
            "node": self.node,
        }

    def matches(self, config_id: str, node: str, manual: bool) -> bool:
        if self.kind == "skip" and manual:  # a run-now is asked for, not due
            return False
        return self.job_config_id in (None, config_id) and self.node in (None, node)


def _optional_text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{name} must be a non-empty string or null")
    return value


class Scheduler:
    """Every job configuration and run of one simulated manager."""

    def __init__(self, state: SimState, config: SimConfig) -> None:
        self.state = state
        self._rng = seeded(config.seed, "scheduler")
        self.configs: dict[str, JobConfig] = {}
        self.runs: dict[str, Run] = {}
        self._ordered: list[Run] = []  # by (createdAt, seq) when _in_order
        self._in_order = True
        self._seq = itertools.count()
        self._fault_ids = itertools.count(1)
        self.faults: list[RunFault] = []
        self.stalled = False
        self._held: list[tuple[Run, bool]] = []  # run-now runs waiting for the stall to end
        self.missed: list[dict[str, Any]] = []  # due runs that never appeared (ground truth)
        self.requests: Counter[str] = Counter()
        self._precreate(config.schedules, config.schedule_history, state.clock())

    # --- configurations ------------------------------------------------------------------

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def config(self, config_id: str) -> JobConfig:
        found = self.configs.get(config_id)
        if found is None:
            raise JobError(404, "Resource not found")
        return found

    def create(self, body: Mapping[str, Any], created: float | None = None) -> JobConfig:
        """A new configuration; ``created`` in the past materialises the runs since then."""
        now = self.state.advance()
        spec = check_body(body)
        return self._store(spec, now if created is None else min(created, now))

    def _store(self, spec: ConfigSpec, created: float) -> JobConfig:
        stored = JobConfig(self._new_id(), created, created, spec)
        self.configs[stored.id] = stored
        self._arm(stored, created)
        return stored

    def patch(self, config_id: str, changes: Mapping[str, Any]) -> JobConfig:
        now = self.state.advance()
        stored = self.config(config_id)
        stored.spec = patched(stored.spec, changes)
        stored.updated = now
        stored.generation += 1  # forget the pending due time; re-arm from now
        self._arm(stored, now)
        return stored

    def delete(self, config_id: str) -> JobConfig:
        self.state.advance()
        stored = self.configs.pop(config_id, None)
        if stored is None:
            raise JobError(404, "Resource not found")
        stored.deleted = True
        return stored

    def config_page(self, skip: int, limit: int, ids: set[str]) -> tuple[int, list[JobConfig]]:
        """Newest first; ``id`` filters; other filters are ignored, as a manager may."""
        self.state.advance()
        chosen = [c for c in self.configs.values() if not ids or c.id in ids]
        chosen.reverse()  # insertion order is creation order, except backdated ones
        chosen.sort(key=lambda c: c.created, reverse=True)
        return len(chosen), chosen[skip : skip + limit]

    # --- runs ----------------------------------------------------------------------------

    def run_now(self, config_id: str) -> Run:
        now = self.state.advance()
        run = self._fire(self.config(config_id), now, manual=True)
        assert run is not None  # a run-now is never skipped
        return run

    def run(self, run_id: str) -> Run:
        self.state.advance()
        found = self.runs.get(run_id)
        if found is None:
            raise JobError(404, "Resource not found")
        return found

    def delete_run(self, run_id: str) -> Run:
        found = self.run(run_id)
        del self.runs[run_id]
        self._ordered.remove(found)
        return found

    def run_page(
        self,
        skip: int,
        limit: int,
        *,
        newest_first: bool,
        config_ids: set[str],
        statuses: set[str],
    ) -> tuple[int, list[Run]]:
        """One page of runs; without filters O(limit) at any depth."""
        self.state.advance()
        if not self._in_order:
            self._ordered.sort(key=lambda r: (r.created, r.seq))
            self._in_order = True
        ordered = self._ordered
        if config_ids or statuses:
            ordered = [
                r
                for r in ordered
                if (not config_ids or r.config_id in config_ids)
                and (not statuses or r.current in statuses)
            ]
        total = len(ordered)
        if not newest_first:
            return total, ordered[skip : skip + limit]
        end = max(total - skip, 0)
        return total, ordered[max(end - limit, 0) : end][::-1]

    def _add_run(self, run: Run) -> None:
        if self._ordered and run.created < self._ordered[-1].created:
            self._in_order = False
        self._ordered.append(run)
        self.runs[run.id] = run

    # --- firing --------------------------------------------------------------------------

    def _arm(self, stored: JobConfig, after: float) -> None:
        """Put the configuration's next due time after ``after`` on the clock."""
        spec = stored.spec
        if spec.disabled:
            return
        if spec.start is not None:
            after = max(after, spec.start - 0.001)  # a due time at start_date counts
        due = next_due(spec.run_at, after)
        if due is None or (spec.end is not None and due > spec.end):
            return
        generation = stored.generation
        self.state.call_at(due, lambda at: self._due(stored, generation, at))

    def _due(self, stored: JobConfig, generation: int, at: float) -> None:
        if stored.deleted or stored.generation != generation:
            return
        self._arm(stored, at)
        if self.stalled:
            self._note_missed(stored, at, None, "stalled")
            return
        self._fire(stored, at, manual=False)

    def _fire(self, stored: JobConfig, at: float, *, manual: bool) -> Run | None:
        rng = self._rng
        spec = stored.spec
        node = rng.choice(NODES) if spec.run_on == "any" else spec.run_on
        lag = rng.uniform(*START_LAG)
        fault = self._take_fault(stored.id, node, manual)
        if fault == "skip":
            self._note_missed(stored, at, node, "skipped")
            return None
        run = Run(self._new_id(), next(self._seq), stored.id, spec, at, node)
        self._add_run(run)
        fails = fault == "fail_before_start"
        if self.stalled:
            self._held.append((run, fails))
        else:
            self.state.call_at(at + lag, self._starter(run, fails))
        return run

    def _start(self, run: Run, at: float, fails: bool) -> None:
        if run.id not in self.runs:  # deleted before it started
            return
        if self.stalled:
            self._held.append((run, fails))
            return
        if fails:
            run.status = FAILED
            return
        target = run.spec.sync_target()
        if target is None:
            run.status = RUNNING
            self.state.call_at(at + self._rng.uniform(*OTHER_SECONDS), self._completer(run))
            return
        source, field = target
        if source not in self.state.sources:  # no such connection on this manager
            run.status = FAILED
            return
        try:
            run.job = self.state.start_at(source, run.spec.params, at, self._rng, field)
        except ValueError:
            run.status = FAILED

    def _starter(self, run: Run, fails: bool) -> Callable[[float], None]:
        return lambda at: self._start(run, at, fails)

    @staticmethod
    def _completer(run: Run) -> Callable[[float], None]:
        def complete(_: float) -> None:
            run.status = COMPLETED

        return complete

    def _take_fault(self, config_id: str, node: str, manual: bool) -> str | None:
        for fault in self.faults:
            if not fault.matches(config_id, node, manual):
                continue
            if fault.count is not None:
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
            return fault.kind
        return None

    def _note_missed(self, stored: JobConfig, at: float, node: str | None, reason: str) -> None:
        self.missed.append(
            {
                "job_config_id": stored.id,
                "name": stored.spec.name,
                "due_at": rfc3339(at),
                "node": node,
                "reason": reason,
            }
        )
        del self.missed[:-MISSED_LOG]

    # --- faults (control API) ----------------------------------------------------------

    def set_stalled(self, stalled: bool) -> None:
        now = self.state.advance()
        self.stalled = stalled
        if not stalled:
            held, self._held = self._held, []
            for run, fails in held:
                self.state.call_at(now, self._starter(run, fails))
            self.state.advance()

    def add_fault(self, body: Mapping[str, Any]) -> RunFault:
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        count = body.get("count", 1)
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise ValueError("count must be a positive integer or null (until cleared)")
        unknown = sorted(set(body) - {"kind", "count", "job_config_id", "node"})
        if unknown:
            raise ValueError(f"unknown scheduler fault field: {', '.join(unknown)}")
        fault = RunFault(
            next(self._fault_ids),
            str(kind),
            count,
            _optional_text(body, "job_config_id"),
            _optional_text(body, "node"),
        )
        self.state.advance()  # runs due before the fault was queued fire without it
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> int:
        cleared = len(self.faults)
        self.faults.clear()
        return cleared

    def control_create(self, body: Mapping[str, Any]) -> JobConfig:
        """``POST /sim/v1/scheduler/job-configs``: the API's body plus ``created_at``."""
        fields = dict(body)
        raw = fields.pop("created_at", None)
        created = None
        if raw is not None:
            if not isinstance(raw, str):
                raise ValueError("created_at must be an RFC 3339 timestamp")
            created = parse_timestamp(raw).timestamp()
        return self.create(fields, created)

    def summary(self) -> dict[str, Any]:
        self.state.advance()
        statuses = Counter(run.current for run in self.runs.values())
        return {
            "stalled": self.stalled,
            "faults": [fault.as_dict() for fault in self.faults],
            "nodes": list(NODES),
            "configs": len(self.configs),
            "runs": {status: statuses.get(status, 0) for status in RUN_STATUSES},
            "missed": list(self.missed),
            "requests": dict(sorted(self.requests.items())),
        }

    # --- pre-created schedules ---------------------------------------------------------

    def _precreate(self, count: int, history: int, now: float) -> None:
        """``count`` sync schedules over the sources, each ``history`` due runs old."""
        targets = [name for name in self.state.sources if name in CLOUD_OF_SOURCE]
        if count and not targets:
            clouds = ", ".join(source for source, _ in SYNC_CLOUDS.values())
            raise ValueError(f"schedules need one of these sources to synchronize: {clouds}")
        for index in range(count):
            source = targets[index % len(targets)]
            cloud = CLOUD_OF_SOURCE[source]
            field = SYNC_CLOUDS[cloud][1]
            run_at, label = PRESETS[index % len(PRESETS)]
            params: dict[str, Any] = {"cloud_name": cloud, "synchronize_all": True}
            if index % 4 != 3:
                names = self.state.sources[source].catalog.names
                params = {"cloud_name": cloud, "synchronize_all": False, field: [names[0]]}
            earliest = now
            for _ in range(history):
                earliest = previous_due(run_at, earliest) or earliest
            body = {
                "name": f"{source}-{label}-{index + 1}",
                "description": "pre-created by the simulator",
                "operation": SYNC,
                "run_at": run_at,
                f"{SYNC}_params": params,
            }
            self._store(check_body(body), earliest - 60.0)
