"""Bench 7: bounded resources, whatever the manager sends (issue 10).

Big job: a simulator process (one source, aws) is given one scripted job with 2,000
scopes (``POST /sim/v1/jobs``; 2,000 ``scopes`` names, 2,000 ``detailed_status`` keys)
whose scopes all fail with a realistic AWS message, spread over ``--spread`` seconds so
that several polls each find hundreds of new failures. The daemon (``python -m monitor
run``, ``interval_seconds: 1``) delivers to a webhook receiver process. When the receiver
holds all 2,000 ``job.domain_failed`` events and the ``job.failed`` one, the daemon's peak
RSS (VmHWM) is read and the daemon is stopped (SIGTERM); then the state file (database +
WAL) is measured and its outbox read. Targets: every ``job.domain_failed`` delivered,
each scope once; peak RSS < 200 MB; state file < 20 MB. For comparison the bench also
prints what the same events would weigh if each carried the job's whole
``detailed_status`` and ``scopes`` (as before the bound): the quadratic cost.

Endless list: a fake manager process (``bench/endless_manager.py``) answers every list
request with a full page of new running jobs and a ``total`` that always promises one more
page. The daemon (default ``poll.max_pages`` 1,000, page size 100: 100,000 jobs per
listing) polls it for ``--cycles`` cycles. Targets: peak RSS < 200 MB; every cycle
counted as ``cckm_poll_errors_total{reason="invalid_response"}`` with one ``poll.failed``
sentence; nothing of it committed (no job of the source in the state, no job event).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.report import save, table

TARGET_RSS_MB = 200.0
TARGET_STATE_MB = 20.0
SCOPES = 2_000
DENIED = (
    "AccessDeniedException: User: arn:aws:iam::{account}:user/cckm is not authorized to "
    "perform: kms:ListKeys"
)


def _mb(kib: int) -> float:
    return round(kib / 1024, 1)


def _state_bytes(state: Path) -> int:
    return sum(p.stat().st_size for p in state.parent.glob(state.name + "*") if p.is_file())


def _account(i: int) -> str:
    return f"{100_000_000_000 + i}"


def _script(scopes: int, spread: float) -> dict[str, Any]:
    return {
        "source": "aws",
        "scopes": [
            {
                "key": f"{_account(i)}/us-east-1",
                "after_seconds": round(0.5 + spread * i / scopes, 3),
                "result": DENIED.format(account=_account(i)),
            }
            for i in range(scopes)
        ],
        "scope_values": [f"kms-{_account(i)}" for i in range(scopes)],
    }


def _unbounded_bytes(state: Path, full: dict[str, str], names: list[str]) -> tuple[int, int, int]:
    """(events, stored bytes, bytes the same events weigh with the whole detailed_status
    and scopes in each): what the bound saves."""
    events = stored = unbounded = 0
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        for (body,) in conn.execute("SELECT body FROM events"):
            events += 1
            stored += len(body)
            data = json.loads(body)
            if "detailed_status" in data["data"]:
                data["data"]["detailed_status"] = full
                data["data"]["scopes"] = names
            unbounded += len(json.dumps(data, separators=(",", ":")))
    return events, stored, unbounded


def big_job(*, scopes: int = SCOPES, spread: float = 5.0, timeout: float = 600.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-bounds-") as tmp:
        work = Path(tmp)
        state = work / "state.db"
        with (
            procs.receiver(log=work / "receiver.log") as rec,
            procs.simulator(sources=("aws",), log=work / "sim.log") as sim,
        ):
            config = procs.write_config(
                work / "monitor.yaml",
                sim.url,
                state,
                http_port=procs.free_port(),
                interval=1.0,
                sinks=[{"type": "webhook", "name": "bench", "url": rec.url}],
            )
            with procs.daemon(config, log=work / "daemon.log") as d:
                tail = procs.LogTail(work / "daemon.log")
                tail.wait_polls(d, 1, 60)  # the baseline: the job below is news
                spec = _script(scopes, spread)
                job = procs.http_json("POST", sim.url + "/sim/v1/jobs", spec)
                started = time.monotonic()
                samples: list[float] = []

                def delivered() -> bool:
                    d.check_alive()
                    samples.append(_mb(procs.memory_kib(d.pid)["VmRSS"]))
                    return bool(rec.stats()["events"] >= scopes + 2)

                procs.wait_until(delivered, timeout, f"{scopes + 2} events", every=0.5)
                seconds = time.monotonic() - started
                rows = rec.received()
                mem = procs.memory_kib(d.pid)
                cpu = procs.cpu_seconds(d.pid)
                tail.read()
                polls = sum(1 for p in tail.polls if p["event"] == "poll.ok")
                stats = rec.stats()
                running_state = _state_bytes(state)  # database + WAL, the daemon running
                running_db = state.stat().st_size
            after = _state_bytes(state)  # stopped: the WAL is checkpointed into the database
        full = {s["key"]: s["result"] for s in spec["scopes"]}
        events, stored, unbounded = _unbounded_bytes(state, full, spec["scope_values"])
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row[2]] = kinds.get(row[2], 0) + 1
    scopes_seen = {row[4] for row in rows if row[2] == "job.domain_failed"}
    domain_failed = kinds.get("job.domain_failed", 0)
    return {
        "scopes": scopes,
        "spread_seconds": spread,
        "job_id": job["id"],
        "seconds_to_deliver": round(seconds, 1),
        "polls_logged": polls,
        "events_by_type": kinds,
        "domain_failed_delivered": domain_failed,
        "distinct_failed_scopes": len(scopes_seen),
        "duplicates": stats["duplicates"],
        "out_of_order": stats["out_of_order"],
        "rss_mb": _mb(mem["VmRSS"]),
        "peak_rss_mb": _mb(mem["VmHWM"]),
        "daemon_cpu_seconds": cpu,
        "state_mb": round(after / 1024 / 1024, 2),
        "state_mb_running": round(running_state / 1024 / 1024, 2),
        "state_db_mb_running": round(running_db / 1024 / 1024, 2),
        "stored_events": events,
        "stored_event_mb": round(stored / 1024 / 1024, 2),
        "stored_bytes_per_event": round(stored / max(events, 1)),
        "unbounded_event_mb": round(unbounded / 1024 / 1024, 1),
        "rss_samples_mb": samples,
        "met": (
            domain_failed == scopes
            and len(scopes_seen) == scopes
            and kinds.get("job.failed", 0) == 1
            and _mb(mem["VmHWM"]) < TARGET_RSS_MB
            and after / 1024 / 1024 < TARGET_STATE_MB
        ),
    }


def endless(*, cycles: int = 2, timeout: float = 900.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-endless-") as tmp:
        work = Path(tmp)
        state = work / "state.db"
        port = procs.free_port()
        fake = procs.spawn(
            [sys.executable, "-m", "bench.endless_manager", "--port", str(port)],
            log=work / "fake.log",
        )
        url = f"http://127.0.0.1:{port}"
        try:
            procs.wait_until(lambda: procs.http_json("GET", url + "/stats"), 30, "the fake")
            config = procs.write_config(
                work / "monitor.yaml", url, state, http_port=procs.free_port(), interval=1.0
            )
            with procs.daemon(config, log=work / "daemon.log") as d:
                tail = procs.LogTail(work / "daemon.log")
                started = time.monotonic()
                samples: list[float] = []

                def failed_cycles() -> bool:
                    d.check_alive()
                    samples.append(_mb(procs.memory_kib(d.pid)["VmRSS"]))
                    tail.read()
                    return sum(1 for p in tail.polls if p["event"] == "poll.failed") >= cycles

                procs.wait_until(failed_cycles, timeout, f"{cycles} cut listings", every=0.5)
                seconds = time.monotonic() - started
                mem = procs.memory_kib(d.pid)
                values = d.metrics()
                api_jobs = procs.http_json("GET", d.http_url + "/api/v1/jobs")
                served = procs.http_json("GET", url + "/stats")
            with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
                jobs_stored = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
                bodies = [json.loads(b) for (b,) in conn.execute("SELECT body FROM events")]
        finally:
            procs.stop(fake)
    failures = [p for p in tail.polls if p["event"] == "poll.failed"]
    oks = [p for p in tail.polls if p["event"] == "poll.ok"]
    invalid = procs.metric(values, "cckm_poll_errors_total", reason="invalid_response")
    other = procs.metric(values, "cckm_poll_errors_total") - invalid
    job_events = [b for b in bodies if str(b["type"]).startswith("job.")]
    listed = api_jobs["jobs"]
    sentences = sorted({str(p.get("error")) for p in failures})
    return {
        "cycles": len(failures),
        "seconds": round(seconds, 1),
        "pages_served": served["pages"],
        "jobs_served": served["jobs"],
        "poll_ok": len(oks),
        "invalid_response": invalid,
        "other_errors": other,
        "error_sentences": sentences,
        "jobs_in_state": jobs_stored,
        "job_events_in_state": len(job_events),
        "api_jobs": len(listed),
        "rss_mb": _mb(mem["VmRSS"]),
        "peak_rss_mb": _mb(mem["VmHWM"]),
        "rss_samples_mb": samples,
        "met": (
            _mb(mem["VmHWM"]) < TARGET_RSS_MB
            and invalid >= cycles
            and other == 0
            and not oks
            and len(sentences) == 1
            and jobs_stored == 0
            and not job_events
            and not listed
        ),
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {"big_job": big_job()}
    b = result["big_job"]
    print(
        f"  bounds: {b['domain_failed_delivered']:,} job.domain_failed delivered, peak "
        f"{b['peak_rss_mb']} MB, state {b['state_mb']} MB",
        flush=True,
    )
    result["endless"] = endless(cycles=1 if quick else 2)
    result["met"] = b["met"] and result["endless"]["met"]
    return result


def render(result: dict[str, Any]) -> str:
    b, e = result["big_job"], result["endless"]
    text = table(
        [
            "failing scopes",
            "domain_failed delivered",
            "deliver s",
            "peak RSS MB",
            "state MB",
            "bytes/event",
            "unbounded MB",
        ],
        [
            [
                b["scopes"],
                f"{b['domain_failed_delivered']:,} ({b['distinct_failed_scopes']:,} scopes)",
                b["seconds_to_deliver"],
                b["peak_rss_mb"],
                b["state_mb"],
                b["stored_bytes_per_event"],
                b["unbounded_event_mb"],
            ]
        ],
    )
    text += "\n\n" + table(
        [
            "endless list: cycles",
            "pages served",
            "peak RSS MB",
            "invalid_response",
            "jobs in state",
            "error",
        ],
        [
            [
                e["cycles"],
                e["pages_served"],
                e["peak_rss_mb"],
                e["invalid_response"],
                e["jobs_in_state"],
                " | ".join(e["error_sentences"]),
            ]
        ],
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one endless cycle instead of two")
    parser.add_argument("--scopes", type=int, default=SCOPES)
    parser.add_argument("--spread", type=float, default=5.0, help="seconds the failures span")
    parser.add_argument("--big-job-only", action="store_true")
    parser.add_argument("--endless-only", action="store_true")
    args = parser.parse_args()
    if args.big_job_only:
        out = big_job(scopes=args.scopes, spread=args.spread)
        print({k: v for k, v in out.items() if k != "rss_samples_mb"})
        return
    if args.endless_only:
        out = endless(cycles=1 if args.quick else 2)
        print({k: v for k, v in out.items() if k != "rss_samples_mb"})
        return
    result = run(quick=args.quick)
    print(render(result))
    print(save("bounds", result))


if __name__ == "__main__":
    main()
