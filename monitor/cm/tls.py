"""One TLS client context per distinct verification setting, shared by the managers' clients.

``ssl.create_default_context(cafile=…)`` loads the system's trust store and the CA file:
about 0.8 MB and 30 ms each. Fifty managers behind one corporate CA need that once, not
fifty times. A context is keyed by the CA file's path *and* its identity on disk (device,
inode, size, modification time), so a CA file replaced in place gives the next client a
fresh context rather than the old trust. Contexts are never changed after they are made,
so sharing them between clients (and threads) is safe. The cache holds at most
``MAX_CONTEXTS``; the oldest goes first (the clients using it keep it alive).
"""

from __future__ import annotations

import os
import ssl
import threading
from collections import OrderedDict

MAX_CONTEXTS = 32

_Key = tuple[str | None, tuple[int, int, int, int] | None]
_contexts: OrderedDict[_Key, ssl.SSLContext] = OrderedDict()
_lock = threading.Lock()


def _identity(ca_file: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(ca_file)
    except OSError:
        return None  # create_default_context says what is wrong, in its words
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _new_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def shared_context(verify: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    """The context for ``verify`` and ``ca_file`` (False when not verifying), made once."""
    if not verify:
        return False
    identity = None if ca_file is None else _identity(ca_file)
    if ca_file is not None and identity is None:
        return _new_context(ca_file)  # raises: no such file, not a certificate…
    key: _Key = (ca_file, identity)
    with _lock:
        context = _contexts.get(key)
        if context is None:
            context = _new_context(ca_file)
            _contexts[key] = context
            while len(_contexts) > MAX_CONTEXTS:
                _contexts.popitem(last=False)
        else:
            _contexts.move_to_end(key)
        return context


def cached_contexts() -> int:
    """How many contexts the cache holds (tests and benches)."""
    with _lock:
        return len(_contexts)


def clear() -> None:
    """Forget every cached context (tests)."""
    with _lock:
        _contexts.clear()
