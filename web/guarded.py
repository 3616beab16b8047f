"""Route registration through the app's guard.

Every route but the status endpoint's runs its handler through one wrapper (the admin
guard under /admin; the security headers every answer carries are added by the app's
answer hook, which sees every answer, those no route makes included). The wrapper is
applied when a route is added, with aiohttp's public `add_get`/`add_post`/`add_route`,
so the status route, added straight to `app.router`, stays bare: no wrapper and no
application middleware on the request hit on every page view of every partner site.

The app factory (`web.app.make_app`) stores the wrapper under `ROUTE_GUARD` before any
route is added; the route factories (`web.longpoll`, `web.operator_page`, `web.admin.*`)
add their routes through `guarded_router(app)`. The wrapper lives in the app, not here,
so this module imports nothing of the pages it guards (no import cycle).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractView
from aiohttp.web_urldispatcher import AbstractRoute

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Guard = Callable[[Handler], Handler]

ROUTE_GUARD: web.AppKey[Guard] = web.AppKey("route_guard")


class GuardedRouter:
    """`app.router`'s route-adding methods, each handler wrapped in the app's guard.
    Made by `guarded_router`; lives only while a route factory adds its routes."""

    def __init__(self, router: web.UrlDispatcher, guard: Guard) -> None:
        self._router = router
        self._guard = guard

    def add_get(self, path: str, handler: Handler, **kwargs: Any) -> AbstractRoute:
        """GET (and HEAD) `path`, guarded."""
        return self._router.add_get(path, self._guard(handler), **kwargs)

    def add_post(self, path: str, handler: Handler, **kwargs: Any) -> AbstractRoute:
        """POST `path`, guarded."""
        return self._router.add_post(path, self._guard(handler), **kwargs)

    def add_route(
        self, method: str, path: str, handler: Handler | type[AbstractView], **kwargs: Any
    ) -> AbstractRoute:
        """Any method on `path`, guarded (class-based views are not used by refdesk)."""
        if isinstance(handler, type):
            raise TypeError("guarded routes take handler functions, not views")
        return self._router.add_route(method, path, self._guard(handler), **kwargs)


def guarded_router(app: web.Application) -> GuardedRouter:
    """The router to add guarded routes with; called by the route factories, after the
    app factory has stored the guard."""
    return GuardedRouter(app.router, app[ROUTE_GUARD])


__all__ = ["ROUTE_GUARD", "Guard", "GuardedRouter", "Handler", "guarded_router"]
