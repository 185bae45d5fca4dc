#!/usr/bin/env python3
"""A TCP proxy that makes loopback look like a long-distance link.

    bench/throttle-proxy.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT \
        [--rate-mb 25] [--delay-ms 40]

Every accepted connection waits --delay-ms before it is connected upstream
(the round trips of a TCP and TLS handshake across regions), then carries at
most --rate-mb MB/s (1 MB = 1e6 bytes) in each direction, as one TCP
connection through a cloud load balancer or across an ocean does. Connections
are independent: N connections carry N times the rate, which is what lets a
client with several connections per blob fill a link one connection cannot.

Prints "ready" on stdout once listening. Stops on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import signal
import time

READ_SIZE = 64 * 1024


async def pump(reader, writer, rate):
    """Copies reader to writer at no more than `rate` bytes per second."""
    start = time.monotonic()
    sent = 0
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            sent += len(data)
            # When the bytes sent so far may leave at this rate.
            due = start + sent / rate
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(client_reader, client_writer, upstream, rate, delay):
    await asyncio.sleep(delay)
    host, port = upstream
    try:
        server_reader, server_writer = await asyncio.open_connection(host, port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        pump(client_reader, server_writer, rate),
        pump(server_reader, client_writer, rate),
    )


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=address, required=True)
    parser.add_argument("--upstream", type=address, required=True)
    parser.add_argument("--rate-mb", type=float, default=25.0)
    parser.add_argument("--delay-ms", type=float, default=40.0)
    args = parser.parse_args()
    rate = args.rate_mb * 1e6
    delay = args.delay_ms / 1000.0
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args.upstream, rate, delay),
        args.listen[0],
        args.listen[1],
        reuse_address=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
