"""Sample lines of the Prometheus text format rendered once, kept deflated, sent as kept.

A collector with many series that rarely change (the running jobs' start times: one
series per running job) renders each group of lines once into a ``Block`` and yields a
``Prerendered`` family; ``monitor.exposition`` sends the blocks as they are: inflated for
a plain scrape, spliced into the gzip stream for a gzip one (``crc32_combine`` makes the
gzip trailer without reading the text again). The format helpers are shared with the
renderer, so both write every line alike.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString


def escape_value(value: str) -> str:
    """A label value as the text format writes it between its quotes."""
    if "\\" in value or "\n" in value or '"' in value:
        value = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def number(value: float) -> str:
    """A sample value as the text format writes it."""
    if value == 0 and math.copysign(1.0, value) > 0:  # -0.0 is "-0.0", as the library has it
        return "0.0"
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


# --- blocks of sample lines rendered once ------------------------------------------------

LEVEL = 6  # zlib's default, as aiohttp's compression uses
_INFLATE_PIECE = 1 << 20


@dataclass(frozen=True, slots=True)
class Block:
    """Sample lines of the text format, rendered once and kept deflated.

    ``deflated`` is a raw deflate stream of its own (no earlier data referenced) ended by
    a sync flush: byte-aligned and not final, so blocks can follow one another inside one
    gzip member. ``crc`` and ``size`` are those of the text, for the gzip trailer.
    """

    deflated: bytes
    crc: int
    size: int

    @classmethod
    def of(cls, pieces: Iterable[str]) -> Block:
        """The block of the lines in ``pieces`` (each a run of whole lines)."""
        compress = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
        out: list[bytes] = []
        crc = size = 0
        for piece in pieces:
            data = piece.encode()
            crc = zlib.crc32(data, crc)
            size += len(data)
            out.append(compress.compress(data))
        out.append(compress.flush(zlib.Z_SYNC_FLUSH))
        return cls(b"".join(out), crc, size)

    def inflate(self) -> Iterator[bytes]:
        """The text again, in pieces of at most a megabyte."""
        decompress = zlib.decompressobj(-15)
        data = self.deflated
        while data:
            piece = decompress.decompress(data, _INFLATE_PIECE)
            data = decompress.unconsumed_tail
            if piece:
                yield piece


class Prerendered(Metric):
    """A family whose sample lines come as ``Block`` objects, made by ``blocks`` when asked.

    ``samples`` must still yield the same samples, one by one, for prometheus_client's
    renderers (OpenMetrics, and the tests' comparison with ``generate_latest``).
    """

    def __init__(
        self, name: str, documentation: str, typ: str, blocks: Callable[[], Iterable[Block]]
    ) -> None:
        super().__init__(name, documentation, typ)
        self.blocks = blocks


# CRC-32 of a concatenation from the CRCs of its parts (zlib's crc32_combine, which
# Python's zlib does not expose): polynomial arithmetic modulo the CRC polynomial.
_POLY = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _x2n_table() -> tuple[int, ...]:
    p = 1 << 30  # x^1
    table = [p]
    for _ in range(31):
        p = _multmodp(p, p)
        table.append(p)
    return tuple(table)


_X2N = _x2n_table()


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """``zlib.crc32(a + b)`` from ``crc1 = zlib.crc32(a)``, ``crc2 = zlib.crc32(b)``, len(b)."""
    p = 1 << 31  # x^0
    n, k = len2, 3  # x^(8 * len2)
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return _multmodp(p, crc1) ^ crc2
