"""A loopback TCP proxy that resets a seeded share of its connections, for bench_faults.py.

    python benchmarks/reset_proxy.py --upstream-port 8000 --resets 0.3 --seed 7

Prints the port it bound as its first stdout line. A reset closes the socket with SO_LINGER 0,
so the kernel sends RST and the client gets a real ECONNRESET: either before any byte of the
reply, or after the reply's head and half of its body (a reply cut short of its
Content-Length). Stdlib asyncio only; it stops by itself after ``--lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import re
import signal
import socket
import struct
import sys
from collections import Counter

IDLE = 30.0  # seconds a proxied connection may wait for its next bytes
CUT_PAUSE = 0.05  # seconds between a cut-short reply and its reset, so the client reads it


class ResetProxy:
    """A loopback TCP proxy that resets a seeded share of its connections.

    A connection's fate is drawn when its first request has arrived, from an RNG seeded with
    ``seed``, the request body and how often that body came before (so a run meets the same
    resets at any concurrency): pass, reset before any byte of the reply, or reset after half
    of the reply's body (a reply cut short of its Content-Length, then ECONNRESET).
    """

    def __init__(self, upstream: tuple[str, int], rate: float, seed: int) -> None:
        self.upstream = upstream
        self.rate = rate
        self.seed = seed
        self.counts: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.writers: set[asyncio.StreamWriter] = set()
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen on a free loopback port; return it."""
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, backlog=256)
        return int(self.server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        """Stop listening, drop every open connection and wait (boundedly) for the handlers."""
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        if self.handlers:
            await asyncio.wait(self.handlers, timeout=5)

    def fate(self, request: bytes) -> str:
        """``pass``, ``reset_before_reply`` or ``reset_mid_reply`` for this connection."""
        body = request.partition(b"\r\n\r\n")[2]
        digest = hashlib.sha256(body).hexdigest()
        self.seen[digest] += 1
        rng = random.Random(f"proxy:{self.seed}:{digest}:{self.seen[digest]}")
        if rng.random() >= self.rate:
            return "pass"
        return "reset_before_reply" if rng.random() < 0.5 else "reset_mid_reply"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection according to its fate."""
        self.counts["connections"] += 1
        self.writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
            task.add_done_callback(self.handlers.discard)
        upstream: asyncio.StreamWriter | None = None
        try:
            request = await asyncio.wait_for(read_message(reader), IDLE)
            if request is None:
                return
            fate = self.fate(request)
            self.counts[fate] += 1
            if fate == "reset_before_reply":
                reset(writer)
                return
            up_reader, upstream = await asyncio.open_connection(*self.upstream)
            upstream.write(request)
            if fate == "reset_mid_reply":
                reply = await asyncio.wait_for(read_message(up_reader), IDLE)
                head, _, body = (reply or b"").partition(b"\r\n\r\n")
                writer.write(head + b"\r\n\r\n" + body[: len(body) // 2])
                await writer.drain()
                await asyncio.sleep(CUT_PAUSE)
                reset(writer)
                return
            await relay(reader, writer, up_reader, upstream)
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client or the stub hung up: nothing left to relay
        finally:
            self.writers.discard(writer)
            writer.close()
            if upstream is not None:
                upstream.close()


async def read_message(reader: asyncio.StreamReader) -> bytes | None:
    """One HTTP message (head and Content-Length body) as bytes; None at a clean EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    found = re.search(rb"^content-length:\s*(\d+)", head, re.IGNORECASE | re.MULTILINE)
    return head + await reader.readexactly(int(found.group(1)) if found else 0)


async def relay(
    client_in: asyncio.StreamReader,
    client_out: asyncio.StreamWriter,
    stub_in: asyncio.StreamReader,
    stub_out: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until either side closes or stays idle for ``IDLE`` seconds."""

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await asyncio.wait_for(source.read(65536), IDLE):
            sink.write(data)
            await sink.drain()

    tasks = [
        asyncio.create_task(pipe(stub_in, client_out)),
        asyncio.create_task(pipe(client_in, stub_out)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the kernel sends RST, so the peer sees ECONNRESET."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def serve(args: argparse.Namespace) -> Counter[str]:
    """Proxy until SIGINT, SIGTERM or ``--lifetime`` seconds; return the counts."""
    proxy = ResetProxy(("127.0.0.1", args.upstream_port), args.resets, args.seed)
    print(await proxy.start(), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.lifetime)
    except TimeoutError:
        print(f"reset proxy: lifetime of {args.lifetime:g} s reached", file=sys.stderr)
    await proxy.aclose()
    return proxy.counts


def main(argv: list[str] | None = None) -> int:
    """Parse flags, proxy, print the counts on shutdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream-port", type=int, required=True, help="on 127.0.0.1")
    parser.add_argument("--resets", type=float, default=0.3, help="share of connections reset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=600.0, help="stop after this (s)")
    args = parser.parse_args(argv)
    print(dict(asyncio.run(serve(args))), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
