"""The manager's REST API under ``/api``: auth, the four job operations per family, and
the scheduler (``scheduler_api.py``).

One catch-all route resolves paths against ``monitor.families.FAMILIES``, so a trailing
slash, an unknown path (404) and a wrong method (405) all answer in the manager's
``{"code", "codeDesc"}`` shape. Status codes: list/get/cancel 200, start 201 (it creates
a resource), bad parameters or body 400, missing/expired token 401, unknown job 404,
cancel of a job that is not running or already aborting 409.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from monitor.families import FAMILIES, Family
from monitor.simulator.auth import AuthError
from monitor.simulator.context import SIMULATOR, Simulator
from monitor.simulator.faults import SHORT_CIRCUIT, Fault, short_circuit, truncate, wrong_types
from monitor.simulator.listing import Selection, parse_query
from monitor.simulator.scheduler_api import SchedulerRoute, resolve_scheduler, scheduler_answer
from monitor.simulator.state import JobError
from monitor.simulator.wire import (
    BAD_REQUEST,
    INTERNAL,
    INVALID_PARAM,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    UNAUTHORIZED,
    BadBody,
    dumps,
    error_body,
    json_object_body,
)

AUTH_PATH = "/api/v1/auth/tokens"
_BY_PATH: dict[str, Family] = {family.path: family for family in FAMILIES.values()}
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    kind: str  # list | get | start | cancel | auth | scheduler | other
    methods: tuple[str, ...] = ()  # empty: no such route
    family: Family | None = None
    job_id: str | None = None
    scheduler: SchedulerRoute | None = None


def resolve(method: str, path: str) -> Route:
    """Which operation ``method path`` is; ``kind`` is ``other`` for unknown routes."""
    clean = path.rstrip("/")
    if clean == AUTH_PATH:
        return Route("auth", ("POST",))
    scheduled = resolve_scheduler(clean)
    if scheduled is not None:
        return Route("scheduler", scheduled.methods, scheduler=scheduled)
    family = _BY_PATH.get(clean)
    if family is not None:
        return Route("start" if method == "POST" else "list", ("GET", "POST"), family)
    parent, _, last = clean.rpartition("/")
    family = _BY_PATH.get(parent)
    if family is not None and last:
        return Route("get", ("GET",), family, last)
    if last == "cancel":
        grand, _, job_id = parent.rpartition("/")
        family = _BY_PATH.get(grand)
        if family is not None and job_id:
            return Route("cancel", ("POST",), family, job_id)
    return Route("other")


async def handle_api(request: web.Request) -> web.StreamResponse:
    """Every /api request: faults, latency, error rate, then the operation itself."""
    sim = request.app[SIMULATOR]
    route = resolve(request.method, request.path)
    sim.stats.requests[route.kind] += 1
    fault = sim.faults.take(request.path, route.kind)
    if fault is not None and fault.kind == "drop":
        if request.transport is not None:
            request.transport.abort()  # the client sees the connection close, no answer
        return web.Response(status=500)  # never written: the transport is gone
    delay = sim.state.settings.latency_ms
    if fault is not None and fault.kind == "slow":
        delay += fault.delay_ms
    if delay > 0:
        await asyncio.sleep(delay / 1000)
    if fault is not None and fault.kind in SHORT_CIRCUIT:
        return _sent(sim, short_circuit(fault))
    rate = sim.state.settings.error_rate
    if rate > 0 and sim.error_rng.random() < rate:
        body = error_body(INTERNAL, "unexpected error")
        return _sent(
            sim, web.Response(status=500, body=dumps(body), content_type="application/json")
        )
    try:
        status, answer = await _answer(sim, request, route, fault)
    except Exception:  # a simulator bug must still answer like the manager would
        _log.exception("simulator failed to answer %s %s", request.method, request.path)
        status, answer = 500, error_body(INTERNAL, "unexpected error")
    if answer is None:  # 204: nothing to say
        return _sent(sim, web.Response(status=status))
    if fault is not None and fault.kind == "wrong_types" and status < 300:
        answer = wrong_types(answer)
    raw = dumps(answer)
    if fault is not None and fault.kind == "truncated":
        raw = truncate(raw)
    return _sent(sim, web.Response(status=status, body=raw, content_type="application/json"))


def _sent(sim: Simulator, response: web.Response) -> web.Response:
    sim.stats.statuses[response.status] += 1
    sim.stats.bytes_sent += len(response.body) if isinstance(response.body, bytes) else 0
    return response


async def _answer(
    sim: Simulator, request: web.Request, route: Route, fault: Fault | None
) -> tuple[int, Any]:
    if not route.methods:
        return 404, error_body(NOT_FOUND, "Resource not found")
    if request.method not in route.methods:
        return 405, error_body(METHOD_NOT_ALLOWED, f"method {request.method} not allowed")
    try:
        if route.kind == "auth":
            return 200, sim.tokens.login(await json_object_body(request))
        sim.tokens.check(request.headers.get("Authorization"))
        if route.scheduler is not None:
            return await scheduler_answer(
                sim.scheduler, request, route.scheduler, sim.config.max_limit
            )
        return await _operation(sim, request, route, fault)
    except AuthError as error:
        kind = UNAUTHORIZED if error.status == 401 else INVALID_PARAM
        return error.status, error_body(kind, error.message)
    except JobError as error:
        kind = NOT_FOUND if error.status == 404 else INVALID_PARAM
        return error.status, error_body(kind, error.message)
    except BadBody as error:
        return 400, error_body(BAD_REQUEST, str(error))
    except ValueError as error:
        return 400, error_body(INVALID_PARAM, str(error))


async def _operation(
    sim: Simulator, request: web.Request, route: Route, fault: Fault | None
) -> tuple[int, Any]:
    state = sim.state
    assert route.family is not None
    source = route.family.source
    if route.kind == "list":
        state.advance()
        query = parse_query(request.query, route.family.filter_field, sim.config.max_limit)
        if sim.config.ignore_sort:  # a manager without sort support: oldest first
            query.sort = [("createdAt", False)]
        selection = Selection(state.source(source), query)
        fired = fault is not None and fault.kind == "duplicate_ids"
        total, skip, limit = selection.total, query.skip, query.limit
        if limit and sim.faults.list_shift(source, skip, fired):
            total += 1  # as if one job had been inserted at the top (see faults.py)
            if skip == 0:
                page = selection.page(0, 1) + selection.page(0, limit - 1)
            else:
                page = selection.page(skip - 1, limit)
        else:
            page = selection.page(skip, limit)
        resources = [job.render() for job in page]
        return 200, {"skip": skip, "limit": limit, "total": total, "resources": resources}
    if route.kind == "start":
        return 201, state.start(source, await json_object_body(request)).render()
    assert route.job_id is not None
    if route.kind == "cancel":
        return 200, state.cancel(source, route.job_id).render()
    state.advance()
    return 200, state.get(source, route.job_id).render()
