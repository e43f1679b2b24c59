"""TLS is verified by default: the simulator's certificate is refused, then trusted via
ca_file; verify_tls: false skips the check."""

from __future__ import annotations

import pytest

from monitor.cm.client import ManagerClient
from monitor.cm.errors import TransportError
from monitor.families import FAMILIES
from monitor.simulator import SimConfig, running_simulator
from tests.pipeline_harness import client_options

CONFIG = SimConfig(sources=("aws",), history=2)


async def test_self_signed_certificate_is_refused_by_default() -> None:
    async with running_simulator(CONFIG, tls=True) as sim:
        assert sim.url.startswith("https://")
        async with ManagerClient(client_options(sim.url, retries=0)) as client:
            with pytest.raises(TransportError, match=r"not trusted.*set ca_file"):
                await client.list_page(FAMILIES["aws"], skip=0, limit=1)


async def test_ca_file_makes_it_trusted() -> None:
    async with running_simulator(CONFIG, tls=True) as sim:
        assert sim.ca_file is not None
        options = client_options(sim.url, ca_file=str(sim.ca_file))
        async with ManagerClient(options) as client:
            page = await client.list_page(FAMILIES["aws"], skip=0, limit=10)
            assert page.total == 2


async def test_verify_tls_false_skips_the_check() -> None:
    async with (
        running_simulator(CONFIG, tls=True) as sim,
        ManagerClient(client_options(sim.url, verify_tls=False)) as client,
    ):
        page = await client.list_page(FAMILIES["aws"], skip=0, limit=10)
        assert page.total == 2
