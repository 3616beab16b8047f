"""GET /healthz and GET /metrics: thin handlers over `component.operations`."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from web.addresses import IPAddress, IPNetwork, parse_ip
from web.keys import METRICS_NETWORKS, OPERATIONS


async def healthz(request: web.Request) -> web.Response:
    """200 with a small JSON body while serving, 503 when the component stream is down or
    the database cannot be written. Public: load balancers and monitors poll it."""
    health = await request.app[OPERATIONS].health()
    return web.json_response(
        health.as_json(),
        status=200 if health.serving else 503,
        headers={"Cache-Control": "no-store"},
    )


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus exposition, only for peers in the configured networks. The peer is
    the connection's own address: forwarded headers are never read here, since anyone can
    write them. Others get a plain 404, as if there were nothing here."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    address = parse_ip(peer[0] if isinstance(peer, tuple) and peer else None)
    if address is None or not _allowed(address, request.app[METRICS_NETWORKS]):
        raise web.HTTPNotFound()
    body = await request.app[OPERATIONS].exposition()
    response = web.Response(body=body, headers={"Cache-Control": "no-store"})
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def _allowed(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)
