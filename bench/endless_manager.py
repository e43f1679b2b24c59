"""A hostile manager for the benches: its AWS job list never ends.

``python -m bench.endless_manager --port P`` (a process of its own, like the receiver).
Login (``POST /api/v1/auth/tokens``) answers any body with a token. Every list request
(``GET /api/v1/cckm/aws/synchronization-jobs``, any filter, any ``skip``) answers a FULL
page of ``limit`` running jobs never listed before, and a ``total`` that lies (always one
more page than asked), so a client that trusts neither ``total`` nor its own patience
would page forever. Every other ``/api`` path is 404.

``GET /stats``: ``{"pages", "jobs"}`` served so far.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from bench.receiver import port_argument, serve
from monitor.families import FAMILIES

PATH = FAMILIES["aws"].path
REGIONS = ("us-east-1", "eu-west-1")
STAMP = "2026-11-23T10:00:00.123456789Z"


class Counter:
    def __init__(self) -> None:
        self.pages = 0
        self.jobs = 0


def job(n: int) -> dict[str, Any]:
    """A running AWS job shaped like the manager's (seed 001), with a unique id."""
    account = f"{100_000_000_000 + n % 1000}"
    return {
        "id": f"{n:08x}-0000-4000-8000-{n:012x}",
        "uri": f"kylo:kylo:cckm:synchronization-job:{n:08x}",
        "account": "kylo:kylo:admin:accounts:kylo",
        "application": "ncryptify:gemalto:admin:apps:kylo",
        "devAccount": "ncryptify:gemalto:admin:accounts:gemalto",
        "createdAt": STAMP,
        "updatedAt": STAMP,
        "kms": [f"kms-{n % 1000}"],
        "regions": list(REGIONS),
        "overall_status": "in_progress",
        "detailed_status": {f"{account}/{region}": "in_progress" for region in REGIONS},
        "cloud": "aws",
        "abort": False,
    }


def build_app(counter: Counter) -> web.Application:
    async def login(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"jwt": "endless-token", "duration": 3600})

    async def listing(request: web.Request) -> web.Response:
        try:
            skip = max(int(request.query.get("skip", "0")), 0)
            limit = min(max(int(request.query.get("limit", "10")), 1), 1000)
        except ValueError:
            return web.json_response({"code": 4, "codeDesc": "NCERRInvalidParamValue"}, status=400)
        start = counter.jobs
        counter.pages += 1
        counter.jobs += limit
        resources = [job(start + i) for i in range(limit)]
        body = {"skip": skip, "limit": limit, "total": skip + 2 * limit, "resources": resources}
        return web.json_response(body)

    async def not_found(request: web.Request) -> web.Response:
        return web.json_response(
            {"code": 5, "codeDesc": "NCERRResourceNotFound: Resource not found"}, status=404
        )

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"pages": counter.pages, "jobs": counter.jobs})

    app = web.Application()
    app.add_routes(
        [
            web.post("/api/v1/auth/tokens", login),
            web.post("/api/v1/auth/tokens/", login),
            web.get(PATH, listing),
            web.get(PATH + "/", listing),
            web.get("/stats", stats),
            web.route("*", "/api/{tail:.*}", not_found),
        ]
    )
    return app


def main(argv: list[str] | None = None) -> int:
    port = port_argument(__doc__, argv)
    banner = f"endless manager listening on http://127.0.0.1:{port}"
    asyncio.run(serve(build_app(Counter()), port, banner))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
