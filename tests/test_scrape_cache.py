"""The running jobs' start-time lines are rendered once per change of a source's running
set, kept deflated, and sent as kept: plain and gzip scrapes stay byte-identical to
prometheus_client's text format through every change."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from monitor.exposition import render_gzip, render_text
from monitor.http import accepts_gzip, build_app
from monitor.metrics import Metrics, StartTimes
from monitor.store import Store
from monitor.textblocks import Block, crc32_combine

PAIRS = [("prod", "aws"), ("prod", "azure"), ('d"r\\', "gcp\nx")]
ODD_IDS = st.text(min_size=1, max_size=12)  # quotes, backslashes, newlines, any Unicode


def fresh() -> Metrics:
    return Metrics(CollectorRegistry(), PAIRS, ["hook"])


def assert_same_as_the_library(metrics: Metrics) -> bytes:
    expected = generate_latest(metrics.registry)
    assert render_text(metrics.registry) == expected
    zipped = render_gzip(metrics.registry)
    inflate = zlib.decompressobj(wbits=31)  # exactly one gzip member, CRC and size checked
    assert inflate.decompress(zipped) == expected
    assert inflate.eof and inflate.unused_data == b""
    return expected


def blocks(metrics: Metrics) -> dict[tuple[str, str], Block | None]:
    start: StartTimes = metrics.job_start
    return {key: row.block for key, row in start._by_source.items()}


def jobs(prefix: str, n: int, at: float = 1.7e9) -> dict[str, float]:
    return {f"{prefix}-{i}": at + i for i in range(n)}


def test_a_scrape_renders_a_source_once_until_its_running_set_changes() -> None:
    m = fresh()
    m.set_running("prod", "aws", jobs("a", 3))
    m.set_running("prod", "azure", jobs("z", 2))
    assert_same_as_the_library(m)
    first = blocks(m)
    assert all(isinstance(b, Block) for b in first.values())
    # polls that find the same jobs (a new dict, equal) keep the rendered lines
    m.set_running("prod", "aws", jobs("a", 3))
    assert_same_as_the_library(m)
    assert blocks(m)[("prod", "aws")] is first[("prod", "aws")]
    # a job starts on aws: only aws is rendered again
    m.set_running("prod", "aws", jobs("a", 4))
    text = assert_same_as_the_library(m)
    assert b'job_id="a-3"' in text
    now = blocks(m)
    assert now[("prod", "aws")] is not first[("prod", "aws")]
    assert now[("prod", "azure")] is first[("prod", "azure")]
    # a job ends on azure
    m.set_running("prod", "azure", {"z-1": 1.7e9 + 1})
    text = assert_same_as_the_library(m)
    assert b'job_id="z-0"' not in text and b'job_id="z-1"' in text
    # a job's start time changes (first seen -> the manager's createdAt)
    m.set_running("prod", "azure", {"z-1": 1.6e9})
    assert b'job_id="z-1",manager="prod",source="azure"} 1.6e+09' in (assert_same_as_the_library(m))
    # the last job of a source ends: its series go, the family's header stays
    m.set_running("prod", "aws", {})
    m.set_running("prod", "azure", {})
    text = assert_same_as_the_library(m)
    assert b"# TYPE cckm_job_start_timestamp_seconds gauge" in text
    assert b"cckm_job_start_timestamp_seconds{" not in text


def test_odd_label_values_are_escaped_as_the_library_does() -> None:
    m = fresh()
    m.set_running('d"r\\', "gcp\nx", {'q"uote': 1.0, "back\\slash": 0.0, "new\nline": -2.5})
    m.set_running("prod", "aws", {"ünï☃de": 1e21, "": 1.7e9, "tab\tx": float("inf")})
    assert_same_as_the_library(m)
    assert_same_as_the_library(m)  # from the kept blocks


def test_a_source_of_many_jobs_is_rendered_in_pieces_and_kept_small() -> None:
    m = fresh()
    m.set_running("prod", "aws", jobs("job", 10_000))
    text = assert_same_as_the_library(m)
    block = blocks(m)[("prod", "aws")]
    assert block is not None
    lines = [
        line
        for line in text.split(b"\n")
        if line.startswith(b"cckm_job_start_timestamp_seconds{") and b'source="aws"' in line
    ]
    assert len(lines) == 10_000
    assert block.size == sum(len(line) + 1 for line in lines)
    assert len(block.deflated) < block.size / 8  # kept deflated, not as 1 MB of text
    pieces = list(block.inflate())
    assert len(pieces) == 1 and b"".join(pieces) == b"\n".join(lines) + b"\n"


def test_nothing_is_rendered_until_a_scrape_asks() -> None:
    m = fresh()
    for n in range(5):
        m.set_running("prod", "aws", jobs("a", n))
    assert blocks(m)[("prod", "aws")] is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(PAIRS),
            st.dictionaries(ODD_IDS, st.floats(allow_nan=False), max_size=6),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_sequence_of_changes_and_scrapes_matches_the_library(
    steps: list[tuple[tuple[str, str], dict[str, float], bool]],
) -> None:
    m = fresh()
    for (manager, source), started, scrape in steps:
        m.set_running(manager, source, started)
        if scrape:
            assert_same_as_the_library(m)
    assert_same_as_the_library(m)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc32_combine_is_the_crc_of_the_concatenation(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_crc32_combine_over_megabytes() -> None:
    a, b = b"x" * 3_000_001, bytes(range(256)) * 5000
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


# --- over HTTP ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("deflate", False),
        ("", False),
        ("identity, *;q=0", False),
        ("gzip;q=bad", False),
    ],
)
def test_accept_encoding(header: str, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def metrics() -> Metrics:
    m = fresh()
    m.set_running("prod", "aws", jobs("a", 5000))
    return m


@pytest.fixture
async def client(store: Store, metrics: Metrics) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = build_app(store, list, version="1", registry=metrics.registry)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_a_gzip_scrape_gets_the_kept_blocks_compressed(
    client: TestClient,  # type: ignore[type-arg]
    metrics: Metrics,
) -> None:
    expected = generate_latest(metrics.registry)
    for _ in range(2):  # the second from the kept blocks
        resp = await client.get(
            "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
        )
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert gzip.decompress(await resp.read()) == expected
    metrics.set_running("prod", "aws", jobs("a", 4999))  # a job ended
    resp = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert gzip.decompress(await resp.read()) == generate_latest(metrics.registry)


async def test_a_plain_scrape_gets_the_same_text(
    client: TestClient,  # type: ignore[type-arg]
    metrics: Metrics,
) -> None:
    for encoding in ("identity", "gzip;q=0"):
        resp = await client.get("/metrics", headers={"Accept-Encoding": encoding})
        assert "Content-Encoding" not in resp.headers
        assert await resp.read() == generate_latest(metrics.registry)


def test_openmetrics_still_reads_every_series_one_by_one() -> None:
    m = fresh()
    m.set_running("prod", "aws", {'j"1': 1.7e9, "j2": 1.6e9})
    render_gzip(m.registry)  # the blocks are kept; OpenMetrics reads the samples
    text = generate_openmetrics(m.registry).decode()  # type: ignore[no-untyped-call]
    lines = [line for line in text.splitlines() if line.startswith("cckm_job_start_timestamp")]
    assert lines == [
        'cckm_job_start_timestamp_seconds{job_id="j\\"1",manager="prod",source="aws"} 1.7e+09',
        'cckm_job_start_timestamp_seconds{job_id="j2",manager="prod",source="aws"} 1.6e+09',
    ]
