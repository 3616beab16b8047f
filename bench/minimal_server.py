"""The status benchmark's baseline: the smallest aiohttp server answering the same URL
with a similar small JSON body and the same headers, in its own process.

    python -m bench.minimal_server --port PORT
"""

from __future__ import annotations

import argparse

from aiohttp import web

HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=5"}


async def status(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "queue": request.match_info["queue"],
            "title": "Ask a librarian (bench)",
            "status": "offline",
            "email": False,
        },
        headers=HEADERS,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.minimal_server")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/api/queues/{queue}/status", status)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
