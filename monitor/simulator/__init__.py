"""A faithful CipherTrust Manager stand-in (aiohttp) for the demo, the tests and benchmarks.

It serves the job APIs of every family in ``monitor.families`` under ``/api`` (see
docs in ``api.py``), the scheduler's job configurations and runs (``scheduler.py``),
token authentication, and a control API under ``/sim/v1`` for injecting faults and
scripting jobs (``control.py``). Job life cycles and scheduled runs follow an injected
clock (``state.py``), so tests move time instead of sleeping.

It may import only ``monitor.families`` and ``monitor.model`` from this package.
"""

from monitor.simulator.config import DEFAULT_LIMIT, SimConfig
from monitor.simulator.context import SIMULATOR, Simulator
from monitor.simulator.server import RunningSimulator, build_app, running_simulator, serve
from monitor.simulator.state import SimState, Transition

__all__ = [
    "DEFAULT_LIMIT",
    "SIMULATOR",
    "RunningSimulator",
    "SimConfig",
    "SimState",
    "Simulator",
    "Transition",
    "build_app",
    "running_simulator",
    "serve",
]
