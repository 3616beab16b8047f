"""The floor's echo side as its own process (refdesk, too, runs in its own process):

    python -m bench.echo --host 127.0.0.1 --port C2S --password PW JID [JID ...]

Logs every JID in, prints ``ready`` on standard output, answers every ``m:`` chat line with
the same line starting ``r:``, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from bench.xmpp_clients import EchoClient


async def run(host: str, port: int, password: str, jids: list[str]) -> None:
    clients = [EchoClient(jid, password, host, port) for jid in jids]
    await asyncio.gather(*(c.connect() for c in clients))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    with contextlib.suppress(Exception):
        await asyncio.gather(*(c.disconnect() for c in clients))
    print(f"answered {sum(c.sent for c in clients)}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.echo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("jids", nargs="+")
    args = parser.parse_args()
    asyncio.run(run(args.host, args.port, args.password, args.jids))


if __name__ == "__main__":
    main()
