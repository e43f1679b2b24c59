"""The scheduler's part of the control API (``/sim/v1/scheduler``, no auth).

- ``GET /sim/v1/scheduler``: ``{stalled, faults, nodes, configs, runs, missed, requests}``
- ``PATCH /sim/v1/scheduler``: ``{"stalled": true|false}``
- ``POST/GET/DELETE /sim/v1/scheduler/faults``: queue, show, clear run faults
- ``POST /sim/v1/scheduler/job-configs``: the API's create body plus ``created_at``
"""

from __future__ import annotations

from aiohttp import web

from monitor.simulator.context import SIMULATOR
from monitor.simulator.wire import BAD_REQUEST, error_response, json_object_body, json_response


def _bad(error: Exception) -> web.Response:
    return error_response(400, BAD_REQUEST, str(error))


async def get_scheduler(request: web.Request) -> web.Response:
    return json_response(200, request.app[SIMULATOR].scheduler.summary())


async def patch_scheduler(request: web.Request) -> web.Response:
    scheduler = request.app[SIMULATOR].scheduler
    try:
        body = await json_object_body(request)
        unknown = sorted(set(body) - {"stalled"})
        if unknown:
            raise ValueError(f"unknown scheduler setting: {', '.join(unknown)}")
        stalled = body.get("stalled", scheduler.stalled)
        if not isinstance(stalled, bool):
            raise ValueError("stalled must be true or false")
    except ValueError as error:
        return _bad(error)
    scheduler.set_stalled(stalled)
    return json_response(200, scheduler.summary())


async def add_fault(request: web.Request) -> web.Response:
    scheduler = request.app[SIMULATOR].scheduler
    try:
        fault = scheduler.add_fault(await json_object_body(request))
    except ValueError as error:
        return _bad(error)
    return json_response(201, fault.as_dict())


async def list_faults(request: web.Request) -> web.Response:
    scheduler = request.app[SIMULATOR].scheduler
    return json_response(200, [fault.as_dict() for fault in scheduler.faults])


async def clear_faults(request: web.Request) -> web.Response:
    return json_response(200, {"cleared": request.app[SIMULATOR].scheduler.clear_faults()})


async def create_config(request: web.Request) -> web.Response:
    scheduler = request.app[SIMULATOR].scheduler
    try:
        stored = scheduler.control_create(await json_object_body(request))
    except ValueError as error:
        return _bad(error)
    return json_response(201, stored.render())


ROUTES = [
    ("GET", "/scheduler", get_scheduler),
    ("PATCH", "/scheduler", patch_scheduler),
    ("POST", "/scheduler/faults", add_fault),
    ("GET", "/scheduler/faults", list_faults),
    ("DELETE", "/scheduler/faults", clear_faults),
    ("POST", "/scheduler/job-configs", create_config),
]
