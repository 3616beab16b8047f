"""A small HTTP load generator for when `wrk` is not installed: N keep-alive connections,
each sending GET requests back to back for a fixed time, in its own process.

    python -m bench.loadgen URL --connections 50 --duration 10

Prints one JSON object: requests, errors (non-200 or failed), seconds, rps, p50/p99 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from bench.common import summarize_ms


async def run(url: str, connections: int, duration: float) -> dict[str, object]:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        loop = asyncio.get_running_loop()
        # One request per connection first, so connection set-up is not measured.
        await asyncio.gather(
            *(session.get(url) for _ in range(connections)), return_exceptions=True
        )
        began = loop.time()
        end = began + duration

        async def worker() -> None:
            nonlocal errors
            while loop.time() < end:
                t = time.perf_counter()
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        if resp.status != 200:
                            errors += 1
                            continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(worker() for _ in range(connections)))
        seconds = loop.time() - began
    summary = summarize_ms(latencies)
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": seconds,
        "rps": len(latencies) / seconds,
        "p50_ms": summary["p50"],
        "p99_ms": summary["p99"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.loadgen")
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, args.connections, args.duration))))


if __name__ == "__main__":
    main()
