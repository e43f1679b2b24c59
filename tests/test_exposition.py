"""Our text renderer writes exactly what prometheus_client's generate_latest writes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest

from bench.scrape import build
from monitor.exposition import render_text


def test_same_text_as_the_library_on_a_busy_daemon() -> None:
    metrics = build(running=300, sinks=2)
    assert render_text(metrics.registry) == generate_latest(metrics.registry)


def test_same_text_with_awkward_values() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("odd_gauge", 'help with \\ backslash\nand "quotes"', ["label"], registry=registry)
    gauge.labels('va"l\\ue\nx').set(float("inf"))
    gauge.labels("neg").set(-1.5e-9)
    gauge.labels("big").set(1.7e12)
    gauge.labels("nan").set(float("nan"))
    Counter("plain", "a counter", registry=registry).inc(3)
    Histogram("h", "hist", ["a", "b"], buckets=(0.1, 1), registry=registry).labels(
        b="2", a="1"
    ).observe(0.5)
    Info("build", "info", registry=registry).info({"version": "1.0"})
    assert render_text(registry) == generate_latest(registry)
