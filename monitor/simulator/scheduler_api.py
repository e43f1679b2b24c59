"""The scheduler's REST API under ``/api/v1/scheduler`` (cckm-api.md, "The scheduler").

| verb | path | answer |
|---|---|---|
| GET | /v1/scheduler/job-configs?skip=&limit=&id= | 200 {skip, limit, total, resources} |
| POST | /v1/scheduler/job-configs | 201 the configuration |
| GET, PATCH | /v1/scheduler/job-configs/{id} | 200 the configuration |
| DELETE | /v1/scheduler/job-configs/{id} | 204 |
| POST | /v1/scheduler/job-configs/{id}/run-now | 201 the run (``scheduled``) |
| GET | /v1/scheduler/jobs?skip=&limit=&sort=-createdAt&job_config_id=&status= | 200 page |
| GET | /v1/scheduler/jobs/{id} | 200 the run |
| DELETE | /v1/scheduler/jobs/{id} | 204 |

Unknown query parameters are ignored (a manager may ignore filters it does not know).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from monitor.model import normalise_status
from monitor.simulator.config import DEFAULT_LIMIT
from monitor.simulator.listing import query_count, query_values
from monitor.simulator.scheduler import Scheduler
from monitor.simulator.wire import json_object_body

PREFIX = "/api/v1/scheduler"
CONFIGS = PREFIX + "/job-configs"
RUNS = PREFIX + "/jobs"
_RUN_SORTS = {"createdAt": False, "created_at": False, "-createdAt": True, "-created_at": True}


@dataclass(frozen=True, slots=True)
class SchedulerRoute:
    resource: str  # configs | config | run_now | runs | run
    methods: tuple[str, ...]
    ident: str | None = None


def resolve_scheduler(clean: str) -> SchedulerRoute | None:
    """The scheduler route of a path without its trailing slash; None if not one."""
    if not clean.startswith(PREFIX + "/"):
        return None
    if clean == CONFIGS:
        return SchedulerRoute("configs", ("GET", "POST"))
    if clean == RUNS:
        return SchedulerRoute("runs", ("GET",))
    for base, resource, methods in (
        (CONFIGS, "config", ("GET", "PATCH", "DELETE")),
        (RUNS, "run", ("GET", "DELETE")),
    ):
        rest = clean.removeprefix(base + "/")
        if rest == clean or not rest:
            continue
        if "/" not in rest:
            return SchedulerRoute(resource, methods, rest)
        ident, _, action = rest.partition("/")
        if resource == "config" and action == "run-now" and ident:
            return SchedulerRoute("run_now", ("POST",), ident)
    return None


def _paging(query: MultiMapping[str], max_limit: int) -> tuple[int, int]:
    return query_count(query, "skip", 0), min(query_count(query, "limit", DEFAULT_LIMIT), max_limit)


def _page(skip: int, limit: int, total: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"skip": skip, "limit": limit, "total": total, "resources": resources}


async def scheduler_answer(
    scheduler: Scheduler, request: web.Request, route: SchedulerRoute, max_limit: int
) -> tuple[int, Any]:
    """(status, body) of one authorised scheduler request; None body: 204 without one.

    ``JobError`` (404) and ``ValueError`` (400) propagate to the caller's error mapping.
    """
    method = request.method
    scheduler.requests[f"{route.resource}.{method.lower()}"] += 1
    if route.resource == "configs":
        if method == "POST":
            return 201, scheduler.create(await json_object_body(request)).render()
        skip, limit = _paging(request.query, max_limit)
        total, configs = scheduler.config_page(skip, limit, query_values(request.query, "id"))
        return 200, _page(skip, limit, total, [c.render() for c in configs])
    if route.resource == "runs":
        skip, limit = _paging(request.query, max_limit)
        sorts = query_values(request.query, "sort")
        if any(value not in _RUN_SORTS for value in sorts):
            raise ValueError("sort must be createdAt or -createdAt")
        newest_first = not sorts or any(_RUN_SORTS[value] for value in sorts)
        total, runs = scheduler.run_page(
            skip,
            limit,
            newest_first=newest_first,
            config_ids=query_values(request.query, "job_config_id"),
            statuses={normalise_status(s) for s in query_values(request.query, "status")},
        )
        return 200, _page(skip, limit, total, [r.render() for r in runs])
    assert route.ident is not None
    if route.resource == "run_now":
        return 201, scheduler.run_now(route.ident).render()
    if route.resource == "run":
        if method == "DELETE":
            scheduler.delete_run(route.ident)
            return 204, None
        return 200, scheduler.run(route.ident).render()
    if method == "PATCH":
        return 200, scheduler.patch(route.ident, await json_object_body(request)).render()
    if method == "DELETE":
        scheduler.delete(route.ident)
        return 204, None
    scheduler.state.advance()
    return 200, scheduler.config(route.ident).render()
