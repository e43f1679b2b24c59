"""One TLS context per distinct (verify_tls, ca_file), shared by every manager's client;
verification trusts and refuses exactly as with a context per client (tests/test_tls.py)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from monitor.cm import tls
from monitor.cm.client import ManagerClient, ssl_context
from monitor.cm.errors import TransportError
from monitor.families import FAMILIES
from monitor.simulator import SimConfig, running_simulator
from monitor.simulator.tls import write_certificates
from tests.pipeline_harness import client_options

CONFIG = SimConfig(sources=("aws",), history=2)


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    tls.clear()
    yield
    tls.clear()


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The CA file of every context actually built."""
    built: list[str | None] = []
    real = tls._new_context

    def counting(ca_file: str | None) -> ssl.SSLContext:
        built.append(ca_file)
        return real(ca_file)

    monkeypatch.setattr(tls, "_new_context", counting)
    return built


async def test_fifty_managers_with_two_ca_files_build_two_contexts(
    tmp_path: Path, made: list[str | None]
) -> None:
    ca = [str(write_certificates(tmp_path / d).ca_file) for d in ("a", "b")]
    async with AsyncExitStack() as stack:
        for n in range(50):
            options = client_options(f"https://cm-{n}.example:443", name=f"m{n}", ca_file=ca[n % 2])
            await stack.enter_async_context(ManagerClient(options))
        # verify_tls: false needs no context at all
        await stack.enter_async_context(
            ManagerClient(client_options("https://x.example", verify_tls=False))
        )
    assert len(made) == 2 and set(made) == set(ca)
    assert tls.cached_contexts() == 2


def test_the_same_setting_gives_the_same_context_and_another_setting_another(
    tmp_path: Path, made: list[str | None]
) -> None:
    a, b = (str(write_certificates(tmp_path / d).ca_file) for d in ("a", "b"))
    first = ssl_context(True, a)
    assert isinstance(first, ssl.SSLContext)
    assert all(ssl_context(True, a) is first for _ in range(10))
    assert ssl_context(True, b) is not first
    assert ssl_context(True, None) is ssl_context(True, None)  # the system's trust store
    assert ssl_context(False, a) is False
    assert ssl_context(False, None) is False
    assert made == [a, b, None]
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname


def test_a_ca_file_replaced_in_place_gives_a_fresh_context(tmp_path: Path) -> None:
    path = write_certificates(tmp_path / "a").ca_file
    before = ssl_context(True, str(path))
    replacement = write_certificates(tmp_path / "b").ca_file.read_bytes()
    path.write_bytes(replacement + b"\n")  # another CA, and another size
    assert ssl_context(True, str(path)) is not before


def test_a_missing_ca_file_fails_as_before_and_is_not_cached(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ssl_context(True, str(tmp_path / "nope.pem"))
    assert tls.cached_contexts() == 0


def test_the_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "MAX_CONTEXTS", 2)
    files = [str(write_certificates(tmp_path / str(n)).ca_file) for n in range(3)]
    first = ssl_context(True, files[0])
    ssl_context(True, files[1])
    assert ssl_context(True, files[0]) is first  # used again: now the newest
    ssl_context(True, files[2])  # evicts files[1], the least recently used
    assert tls.cached_contexts() == 2
    assert ssl_context(True, files[0]) is first


async def test_a_shared_context_still_trusts_its_ca_and_refuses_others(tmp_path: Path) -> None:
    other_ca = str(write_certificates(tmp_path / "other").ca_file)
    async with running_simulator(CONFIG, tls=True) as sim:
        assert sim.ca_file is not None
        trusted = client_options(sim.url, ca_file=str(sim.ca_file), retries=0)
        for _ in range(2):  # the second client reuses the first one's context
            async with ManagerClient(trusted) as client:
                page = await client.list_page(FAMILIES["aws"], skip=0, limit=10)
                assert page.total == 2
        assert tls.cached_contexts() == 1
        for options in (
            client_options(sim.url, ca_file=other_ca, retries=0),  # another CA
            client_options(sim.url, retries=0),  # the system's trust store
        ):
            async with ManagerClient(options) as client:
                with pytest.raises(TransportError, match=r"not trusted.*set ca_file"):
                    await client.list_page(FAMILIES["aws"], skip=0, limit=1)
        # and the trusted one still works after the refusals, from the cache
        async with ManagerClient(trusted) as client:
            assert (await client.list_page(FAMILIES["aws"], skip=0, limit=10)).total == 2
        assert tls.cached_contexts() == 3
