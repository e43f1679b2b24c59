"""A webhook receiver for the benches: answers 204 at once and remembers what came.

``python -m bench.receiver --port P`` (a process of its own, so that its CPU does not
share the GIL with what is measured). Each POST is recorded with its arrival wall time
(``time.time()``, the clock the simulator also stamps transitions with). Order is checked
per job: events of one job must arrive in the order the monitor made them, read from
``data.bench_seq`` when the bench put one there, else from the event type's place in a
job's life (started < abort_requested/domain_failed < terminal).

``GET /stats``: counts, first/last arrival, order violations, duplicates.
``GET /received``: every record ``[arrival, id, type, job_id, scope, timestamp]``.
``POST /reset``: forget everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import Any

from aiohttp import web

_RANK = {
    "job.started": 0,
    "job.abort_requested": 1,
    "job.domain_failed": 1,
    "job.stuck": 1,
    "job.completed": 2,
    "job.failed": 2,
    "job.aborted": 2,
    "job.vanished": 2,
}


class Records:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.rows: list[list[Any]] = []
        self.last: dict[str, float] = {}
        self.ids: set[str] = set()
        self.duplicates = 0
        self.out_of_order = 0
        self.examples: list[str] = []
        self.requests = 0

    def add(self, arrival: float, body: dict[str, Any]) -> None:
        data = body.get("data") or {}
        job = data.get("job_id")
        kind = body.get("type", "")
        if body.get("id") in self.ids:
            self.duplicates += 1
        self.ids.add(body.get("id", ""))
        self.rows.append(
            [arrival, body.get("id"), kind, job, data.get("scope"), body.get("timestamp")]
        )
        if job is None:
            return
        position = data.get("bench_seq")
        order = float(position) if position is not None else float(_RANK.get(kind, 1))
        before = self.last.get(job)
        strict = position is not None
        if before is not None and (order <= before if strict else order < before):
            self.out_of_order += 1
            if len(self.examples) < 5:
                self.examples.append(f"{job}: {kind} ({order}) after {before}")
        self.last[job] = max(order, before if before is not None else order)

    def stats(self) -> dict[str, Any]:
        return {
            "events": len(self.rows),
            "requests": self.requests,
            "first": self.rows[0][0] if self.rows else None,
            "last": self.rows[-1][0] if self.rows else None,
            "jobs": len(self.last),
            "out_of_order": self.out_of_order,
            "duplicates": self.duplicates,
            "examples": self.examples,
        }


def build_app(records: Records) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        arrival = time.time()
        raw = await request.read()
        records.requests += 1
        body = json.loads(raw)
        for item in body if isinstance(body, list) else [body]:
            records.add(arrival, item)
        return web.Response(status=204)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(records.stats())

    async def received(request: web.Request) -> web.Response:
        return web.json_response(records.rows)

    async def reset(request: web.Request) -> web.Response:
        records.reset()
        return web.json_response({"reset": True})

    app = web.Application()
    app.add_routes(
        [
            web.post("/hook", hook),
            web.get("/stats", stats),
            web.get("/received", received),
            web.post("/reset", reset),
        ]
    )
    return app


async def serve(app: web.Application, port: int, banner: str) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` until SIGTERM or SIGINT (a bench's helper
    process: the receiver, the endless manager)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(banner, flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    await runner.cleanup()


def port_argument(doc: str | None, argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--port", type=int, required=True)
    port: int = parser.parse_args(argv).port
    return port


def main(argv: list[str] | None = None) -> int:
    port = port_argument(__doc__, argv)
    banner = f"receiver listening on http://127.0.0.1:{port}/hook"
    asyncio.run(serve(build_app(Records()), port, banner))
    return 0


if __name__ == "__main__":
    sys.exit(main())
