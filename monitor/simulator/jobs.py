"""One job, held compactly and rendered to the manager's JSON shape only when asked."""

from __future__ import annotations

from typing import Any

from monitor.families import Family
from monitor.simulator.scopes import ScopeSet
from monitor.simulator.wire import rfc3339

RUNNING = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
ABORTED = "aborted"

# The seeds show updatedAt a little after completed_at (seed 001: 146 µs).
UPDATE_LAG = 0.000146

_ACCOUNT = "kylo:kylo:admin:accounts:kylo"
_APPLICATION = "ncryptify:gemalto:admin:apps:kylo"
_DEV_ACCOUNT = "ncryptify:gemalto:admin:accounts:gemalto"


class Job:
    """A job of one family. Times are epoch seconds; ``completed`` is None while running.

    ``status`` is the overall status exactly as the API spells it (``"in progress"`` is
    possible while running). ``results`` holds one ``detailed_status`` value per scope
    key; ``planned`` the value each scope will end with (live jobs only).
    """

    __slots__ = (
        "abort",
        "completed",
        "created",
        "deleted",
        "family",
        "job_id",
        "nanos",
        "ns_salt",
        "pending",
        "planned",
        "results",
        "scope",
        "seq",
        "status",
        "updated",
    )

    def __init__(
        self,
        *,
        seq: int,
        job_id: str,
        family: Family,
        scope: ScopeSet,
        created: float,
        status: str = RUNNING,
        results: list[str] | None = None,
        nanos: bool = False,
        ns_salt: int = 0,
    ) -> None:
        self.seq = seq  # creation order: breaks createdAt ties, newest last
        self.job_id = job_id
        self.family = family
        self.scope = scope
        self.created = created
        self.updated = created
        self.completed: float | None = None
        self.status = status
        self.abort = False
        self.results = results if results is not None else [RUNNING] * len(scope.keys)
        self.planned: list[str | None] | None = None  # None: the scope never finishes
        self.pending = 0  # scopes still to finish (hung ones included)
        self.nanos = nanos
        self.ns_salt = ns_salt
        self.deleted = False

    @property
    def running(self) -> bool:
        return self.completed is None

    def _stamp(self, moment: float, index: int) -> str:
        if not self.nanos:
            return rfc3339(moment)
        return rfc3339(moment, nanos=True, extra_ns=(self.ns_salt + 397 * index) % 1000)

    def render(self) -> dict[str, Any]:
        """The job object exactly as the manager answers it (key order of the seeds)."""
        family = self.family
        body: dict[str, Any] = {
            "id": self.job_id,
            "uri": f"kylo:kylo:cckm:synchronize:{self.job_id}",
            "account": _ACCOUNT,
            "application": _APPLICATION,
            "devAccount": _DEV_ACCOUNT,
            "createdAt": self._stamp(self.created, 0),
            "updatedAt": self._stamp(self.updated, 1),
        }
        if self.completed is not None:
            body["completed_at"] = self._stamp(self.completed, 2)
        body["overall_status"] = self.status
        body["detailed_status"] = dict(zip(self.scope.keys, self.results, strict=True))
        body["cloud"] = family.cloud
        for name, values in self.scope.extras:
            body[name] = list(values)
        body[family.scope_field] = list(self.scope.values)
        body["abort"] = self.abort
        return body
