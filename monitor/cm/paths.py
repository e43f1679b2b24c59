"""Job ids in manager URLs: checked, then put in the path as ONE percent-encoded segment.

A job id is never pasted raw into a URL: ``../../azure/synchronization-jobs/<id>`` under
the aws path would otherwise be normalised (by yarl, or by the manager) into a request
about a job of another family. ``job_path`` refuses what no encoding makes safe and
encodes everything else, ``/`` included; the client then sends the path as already
encoded so that nothing decodes or normalises it on the way.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final
from urllib.parse import quote

from monitor.cm.errors import InvalidJobId

MAX_JOB_ID: Final = 200  # manager ids are UUIDs (36 characters); room to spare
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9._:-]+")


def job_id_problem(job_id: str, *, strict: bool = False) -> str | None:
    """Why ``job_id`` cannot name a job in a URL, in words; None when it can.

    ``strict`` (the command line): only letters, digits and ``. _ - :``, as manager ids
    are (UUIDs); no ``/``, ``\\``, ``%`` or space that a URL or a manager could read twice.
    """
    if not job_id:
        return "a job id cannot be empty"
    if job_id in {".", ".."}:
        return f"a job id cannot be {job_id!r}"
    if len(job_id) > MAX_JOB_ID:
        return f"a job id has at most {MAX_JOB_ID} characters, this one {len(job_id)}"
    if any(unicodedata.category(ch).startswith("C") for ch in job_id):
        return "a job id cannot hold control or unassigned characters"
    if strict and not _PLAIN_ID.fullmatch(job_id):
        return "a job id holds only letters, digits and '.', '_', '-', ':'"
    return None


def job_path(base: str, job_id: str, suffix: str = "") -> str:
    """``base/<id><suffix>`` with the id as one percent-encoded segment.

    Raises ``InvalidJobId`` for an id that ``job_id_problem`` refuses.
    """
    problem = job_id_problem(job_id)
    if problem is not None:
        raise InvalidJobId(f"job id {shown(job_id)} refused: {problem}")
    return f"{base}/{quote(job_id, safe='')}{suffix}"


def shown(job_id: str, limit: int = 60) -> str:
    """The id as a message may show it: quoted, escaped, cut."""
    text = repr(job_id[:limit])
    return text if len(job_id) <= limit else text + "…"
