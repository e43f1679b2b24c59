"""The test-control API under ``/sim/v1`` (no auth; not part of the manager's API).

- ``POST/GET/DELETE /sim/v1/faults``: queue, show, clear injected faults (faults.py)
- ``POST /sim/v1/revoke-tokens``: every issued access and refresh token stops working
- ``POST /sim/v1/jobs``: a scripted job (201); ``DELETE /sim/v1/jobs/{source}/{id}``: gone
- ``GET/PATCH /sim/v1/config``: job_rate, failure_probability, cancel_probability,
  latency_ms, error_rate, changed live
- ``GET /sim/v1/transitions?since=SEQ``: the ground-truth log, entries with seq > SEQ
- ``GET /sim/v1/stats``: request counts by kind, bytes sent, jobs by status
- ``/sim/v1/scheduler…``: stall the scheduler, run faults, backdated configurations
  (scheduler_control.py)
"""

from __future__ import annotations

from aiohttp import web

from monitor.simulator import scheduler_control
from monitor.simulator.context import SIMULATOR
from monitor.simulator.state import JobError
from monitor.simulator.wire import (
    BAD_REQUEST,
    NOT_FOUND,
    error_response,
    json_object_body,
    json_response,
)

PREFIX = "/sim/v1"


def _bad(error: Exception) -> web.Response:
    return error_response(400, BAD_REQUEST, str(error))


async def add_fault(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    try:
        fault = sim.faults.add(await json_object_body(request))
    except ValueError as error:
        return _bad(error)
    return json_response(201, fault.as_dict())


async def list_faults(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return json_response(200, [fault.as_dict() for fault in sim.faults.pending])


async def clear_faults(request: web.Request) -> web.Response:
    return json_response(200, {"cleared": request.app[SIMULATOR].faults.clear()})


async def revoke_tokens(request: web.Request) -> web.Response:
    request.app[SIMULATOR].tokens.revoke()
    return json_response(200, {"revoked": True})


async def create_job(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    try:
        job = sim.state.scripted(await json_object_body(request))
    except (JobError, ValueError) as error:  # an unknown source is a bad body here
        return _bad(error)
    return json_response(201, job.render())


async def delete_job(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    try:
        job = sim.state.delete(request.match_info["source"], request.match_info["job_id"])
    except JobError as error:
        return error_response(error.status, NOT_FOUND, error.message)
    return json_response(200, {"deleted": job.job_id})


async def get_config(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    sim.state.advance()
    return json_response(200, sim.state.settings.as_dict())


async def patch_config(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    try:
        settings = sim.state.update_settings(await json_object_body(request))
    except ValueError as error:
        return _bad(error)
    return json_response(200, settings)


async def transitions(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    raw = request.query.get("since", "0")
    if not raw.isdigit():
        return _bad(ValueError("since must be a non-negative integer"))
    sim.state.advance()
    log = sim.state.transitions
    since = int(raw)  # seq starts at 1 and equals position + 1
    return json_response(200, [entry.as_dict() for entry in log[since:]])


async def stats(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    sim.state.advance()
    body = sim.stats.as_dict()
    body["jobs"] = sim.state.job_counts()
    body["jobs_by_source"] = {name: src.total for name, src in sim.state.sources.items()}
    body["transitions"] = len(sim.state.transitions)
    body["faults_pending"] = len(sim.faults.pending)
    body["scheduler_requests"] = dict(sorted(sim.scheduler.requests.items()))
    return json_response(200, body)


def add_routes(app: web.Application) -> None:
    """Register the /sim/v1 routes (with and without a trailing slash)."""
    routes = [
        ("POST", "/faults", add_fault),
        ("GET", "/faults", list_faults),
        ("DELETE", "/faults", clear_faults),
        ("POST", "/revoke-tokens", revoke_tokens),
        ("POST", "/jobs", create_job),
        ("DELETE", "/jobs/{source}/{job_id}", delete_job),
        ("GET", "/config", get_config),
        ("PATCH", "/config", patch_config),
        ("GET", "/transitions", transitions),
        ("GET", "/stats", stats),
        *scheduler_control.ROUTES,
    ]
    for method, path, handler in routes:
        app.router.add_route(method, PREFIX + path, handler)
        app.router.add_route(method, PREFIX + path + "/", handler)
