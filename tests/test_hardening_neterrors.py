"""Issue 10, class 8: connection failures say what happened, in words, the same words from
the manager client and from the sinks (``monitor.neterrors``), against real loopback
situations: a closed port, an unresolvable name, a self-signed TLS server, a server that
accepts and closes (or resets), a server that never answers."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from monitor.clock import SystemClock
from monitor.cm.client import ManagerClient
from monitor.cm.errors import CMError, RequestTimeout, TransportError
from monitor.families import FAMILIES
from monitor.neterrors import describe
from monitor.simulator import SimConfig, running_simulator
from monitor.sinks.base import CONNECTION, TIMEOUT, DeliveryError
from monitor.sinks.http_post import HttpPoster
from tests.pipeline_harness import client_options
from tests.processes import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
CLASS_NAMES = ("ClientConnectorError", "ClientOSError", "ServerDisconnected", "Error(", "Errno")


@asynccontextmanager
async def tcp_server(handle: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def close_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")  # the whole request head, then a clean close
    writer.close()


async def reset_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()  # linger 0: RST instead of FIN


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.read()  # until the client gives up
    finally:
        writer.close()


async def manager_error(url: str, **options: object) -> CMError:
    settings = client_options(url, retries=0, timeout_seconds=1.0, **options)
    async with ManagerClient(settings) as client:
        with pytest.raises(CMError) as caught:
            await client.list_page(FAMILIES["aws"], skip=0, limit=1)
    return caught.value


async def sink_error(url: str) -> DeliveryError:
    poster = HttpPoster(url + "/hook", where="hook", timeout_seconds=1.0, clock=SystemClock())
    try:
        with pytest.raises(DeliveryError) as caught:
            await poster.post(b"{}", {})
    finally:
        await poster.close()
    return caught.value


def in_words(message: str, words: str) -> None:
    assert words in message, message
    for name in CLASS_NAMES:
        assert name not in message, message


async def test_a_closed_port_is_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    error = await manager_error(url)
    assert isinstance(error, TransportError)
    in_words(error.message, "connection refused")
    delivery = await sink_error(url)
    in_words(delivery.message, "connection refused")
    assert (delivery.reason, delivery.retryable) == (CONNECTION, True)


async def test_an_unresolvable_name_is_name_not_resolved() -> None:
    url = "http://cckm-monitor-test.invalid:8443"  # RFC 6761: never resolves
    in_words((await manager_error(url)).message, "name not resolved")
    delivery = await sink_error(url)
    in_words(delivery.message, "name not resolved")
    assert delivery.reason == CONNECTION


async def test_a_self_signed_server_is_tls_verification_failed() -> None:
    async with running_simulator(SimConfig(sources=("aws",), history=1), tls=True) as sim:
        error = await manager_error(sim.url)
        in_words(error.message, "TLS verification failed (self-signed certificate")
        assert "set ca_file" in error.message
        assert "_ssl.c" not in error.message
        delivery = await sink_error(sim.url)
        in_words(delivery.message, "TLS verification failed (self-signed certificate")
        assert delivery.reason == CONNECTION


async def test_a_server_that_accepts_and_closes_is_connection_closed() -> None:
    async with tcp_server(close_after_request) as url:
        in_words((await manager_error(url)).message, "connection closed by the server")
        in_words((await sink_error(url)).message, "connection closed by the server")


async def test_a_server_that_resets_is_connection_reset() -> None:
    async with tcp_server(reset_after_request) as url:
        in_words((await manager_error(url)).message, "connection reset by the server")
        in_words((await sink_error(url)).message, "connection reset by the server")


async def test_a_server_that_never_answers_is_timed_out() -> None:
    async with tcp_server(never_answer) as url:
        error = await manager_error(url)
        assert isinstance(error, RequestTimeout)
        in_words(error.message, "timed out")
        delivery = await sink_error(url)
        in_words(delivery.message, "timed out")
        assert delivery.reason == TIMEOUT


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection reset by the server"),
        (socket.gaierror(-2, "Name or service not known"), "name not resolved"),
        (TimeoutError(), "timed out"),
        (OSError(113, "No route to host"), "host unreachable"),
        (OSError(0, ""), "connection failed"),
        (RuntimeError("?"), "the exchange failed"),
    ],
)
def test_describe_without_a_class_name(exc: BaseException, words: str) -> None:
    assert describe(exc).words == words
