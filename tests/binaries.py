"""External programs some tests need, from Debian's ``prometheus`` and
``prometheus-alertmanager`` packages (``.ci/run`` installs them).

Missing locally: the test is skipped. Missing when ``CI`` is set: the test fails, because
CI installs them and a silently skipped end-to-end test would hide breakage.
"""

from __future__ import annotations

import os
import shutil

import pytest

# where Debian puts them, for a PATH without /usr/bin (cron, some IDE runners)
FALLBACK_DIRS = ("/usr/bin", "/usr/local/bin")
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}


def require(binary: str) -> str:
    """The path of ``binary``; skips the test if it is missing, fails when ``CI`` is set."""
    found = shutil.which(binary)
    for directory in FALLBACK_DIRS:
        if found is not None:
            break
        found = shutil.which(binary, path=directory)
    if found is not None:
        return found
    message = f"{binary} is not installed (apt-get install {PACKAGES.get(binary, binary)})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must install it", pytrace=False)
    pytest.skip(message)
