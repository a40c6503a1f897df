"""The floor under fan-out: server CPU for one bare `transport.write` of a frame.

    .venv/bin/python bench/write_floor.py [--sockets 1000] [--frame-bytes 300] [--rounds 50]

A uvloop server (as `parley serve` runs) accepts `--sockets` loopback connections from a
child process that reads and discards everything, then writes one WebSocket-framed
`--frame-bytes` text frame to every socket, `--rounds` times, 100 ms apart, and prints the
server's CPU per write: the kernel's part of a delivery (a loopback send wakes the reader),
which no server written above the socket API can go below. `bench/fanout.py` runs it at the
start so that its per-delivery figures have a baseline from the same machine and the same
hour: this VM's system calls cost several times what they cost on another.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from typing import cast

import uvloop

PAUSE_SECONDS = 0.1


def frame_of(size: int) -> bytes:
    """An unmasked WebSocket text frame with a `size`-byte payload (server to client)."""
    if size < 126:
        header = bytes([0x81, size])
    elif size < 1 << 16:
        header = bytes([0x81, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x81, 127]) + size.to_bytes(8, "big")
    return header + b"x" * size


class _Discard(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        pass


class _Accepted(asyncio.Protocol):
    def __init__(self, transports: list[asyncio.BaseTransport]) -> None:
        self.transports = transports

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transports.append(transport)


def _read_forever(port: int, sockets: int) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(sockets):
            await loop.create_connection(_Discard, "127.0.0.1", port)
        await asyncio.Event().wait()

    uvloop.run(run())


async def measure(sockets: int, frame_bytes: int, rounds: int) -> float:
    """Microseconds of this process's CPU per `transport.write`."""
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []
    server = await loop.create_server(lambda: _Accepted(transports), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    child = os.fork()
    if child == 0:  # the readers: a process of their own, as clients are
        try:
            _read_forever(port, sockets)
        finally:
            os._exit(0)
    try:
        deadline = loop.time() + 60
        while len(transports) < sockets:
            if loop.time() > deadline:
                raise RuntimeError(f"only {len(transports)} of {sockets} sockets connected")
            await asyncio.sleep(0.05)
        frame = frame_of(frame_bytes)
        # uvloop's transports do not subclass asyncio's, but are write transports.
        writers = [cast(asyncio.WriteTransport, t) for t in transports]
        cpu = 0.0
        for _ in range(rounds):
            start = time.process_time()
            for transport in writers:
                transport.write(frame)
            cpu += time.process_time() - start
            await asyncio.sleep(PAUSE_SECONDS)
        return cpu / (len(writers) * rounds) * 1e6
    finally:
        os.kill(child, signal.SIGKILL)
        await asyncio.to_thread(os.waitpid, child, 0)
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--frame-bytes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    us = uvloop.run(measure(args.sockets, args.frame_bytes, args.rounds))
    print(
        f"bare transport.write: {us:.1f} us of server CPU per {args.frame_bytes}-byte frame"
        f" ({args.sockets} loopback sockets, uvloop)"
    )


if __name__ == "__main__":
    main()
