"""Admin accounts at the door: passwords (argon2id), login throttling, server-side
sessions in secure cookies, CSRF tokens, and the middleware that guards `/admin/`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from component.core.login_throttle import LoginLimits, allowed, throttle_network
from component.passwords import PasswordsBusy, PasswordWorkers, hash_password
from component.store.accounts import AdminSession
from web.keys import CONFIG, SERVICE
from web.patron import request_origin
from web.security import content_security_policy

COOKIE = "refdesk_admin"
LOGIN_COOKIE = "refdesk_login"
SESSION_TTL = timedelta(hours=8)
LOGIN_LIMITS = LoginLimits()
# Seconds a login turned away as "busy" is told to wait before trying again.
BUSY_RETRY_AFTER = 5
SESSION_KEY = web.RequestKey("admin_session", AdminSession)
# The threads that hash and check passwords, created by `setup_password_workers`.
PASSWORDS = web.AppKey("passwords", PasswordWorkers)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A hash to verify against when the username does not exist, so that both cases take the
# same time and nobody learns which usernames exist. Made with the configured parameters,
# like the real ones.
STAND_IN_HASH = web.AppKey("stand_in_hash", str)


def setup_password_workers(app: web.Application) -> None:
    """Give the app its password workers, closed when the app is cleaned up. Called by
    `setup_admin` when the app is built."""
    hashing = app[CONFIG].web.password_hashing
    app[PASSWORDS] = PasswordWorkers(hashing=hashing)
    app[STAND_IN_HASH] = hash_password(secrets.token_hex(16), hashing)

    async def close(app: web.Application) -> None:
        app[PASSWORDS].close()

    app.on_cleanup.append(close)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def current(request: web.Request) -> AdminSession:
    """The logged-in admin of a request under /admin (the middleware guarantees one)."""
    return request[SESSION_KEY]


def _secure(request: web.Request) -> bool:
    return urlsplit(request.app[CONFIG].web.public_url).scheme == "https"


def _safe_next(target: str | None) -> str:
    """Only our own admin pages are valid targets after login (no open redirect)."""
    if target and target.startswith("/admin/") and not target.startswith("//"):
        return target
    return "/admin/"


def _same_origin(request: web.Request) -> bool:
    """Browsers send Origin on POST; a cross-site form carries the other site's."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    public = urlsplit(request.app[CONFIG].web.public_url)
    return parts.netloc == request.host or (parts.scheme, parts.netloc) == (
        public.scheme,
        public.netloc,
    )


def admin_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The security headers of every answer under /admin. Called by `admin_guard` for the
    answers of admin routes, and by the app's answer hook (`web.app`) for the answers
    under /admin that no admin route made (aiohttp's own 404 and 405)."""
    # frame-src 'self': the queue page previews the patron widget in a frame.
    response.headers["Content-Security-Policy"] = (
        content_security_policy(request, "") + "; frame-src 'self'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"


@web.middleware
async def admin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /admin page needs a session (except the login form and static files), every
    POST a matching CSRF token and our own Origin; no admin page may be framed. Called by
    the app's route wrapper (`web.app._through_guard`) for paths under /admin."""
    path = request.path
    if not path.startswith("/admin"):
        return await handler(request)
    try:
        response = await _admitted(request, handler)
    except web.HTTPException as exc:
        # The guard's own refusals (the redirect to the login form, a form without its
        # token) and the handler's raised answers are answers too.
        admin_headers(request, exc)
        raise
    admin_headers(request, response)
    return response


async def _admitted(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`handler`'s answer once the request may have one: a session (but for the login
    form and static files) and, for a POST, the session's CSRF token from our own site.
    Called by `admin_guard`; raises the refusal otherwise."""
    path = request.path
    public = path in ("/admin/login",) or path.startswith("/admin/static/")
    if not public:
        session = await _load_session(request)
        if session is None:
            raise web.HTTPSeeOther(f"/admin/login?next={request.path_qs}")
        request[SESSION_KEY] = session
        if request.method == "POST":
            form = await request.post()
            token = form.get("csrf")
            if (
                not isinstance(token, str)
                or not hmac.compare_digest(token, session.csrf)
                or not _same_origin(request)
            ):
                raise web.HTTPForbidden(text="This form has expired or came from another site.")
    return await handler(request)


async def _load_session(request: web.Request) -> AdminSession | None:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        return None
    service = request.app[SERVICE]
    now = service.clock()
    session = await service.store.accounts.session(_token_hash(token), now)
    if session is not None and session.expires_at - now < SESSION_TTL / 2:
        await service.store.accounts.extend_session(_token_hash(token), now + SESSION_TTL)
    return session


async def login_page(request: web.Request) -> web.Response:
    """GET /admin/login."""
    return _login_form(request, error=None, username="", status=200)


def _login_form(
    request: web.Request, *, error: str | None, username: str, status: int
) -> web.Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = aiohttp_jinja2.render_template(
        "admin/login.html",
        request,
        {
            "error": error,
            "username": username,
            "csrf": token,
            "next": _safe_next(request.query.get("next")),
        },
        status=status,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        path="/admin/login",
    )
    return response


async def login(request: web.Request) -> web.StreamResponse:
    """POST /admin/login: check the double-submitted CSRF token; record the attempt in
    the throttle, which refuses it (429) once its user, network or user-and-network has
    failed too often; check the password on the password workers (503 when they are
    saturated); on success mark the attempt good and start a session."""
    form = await request.post()
    token = form.get("csrf")
    cookie = request.cookies.get(LOGIN_COOKIE)
    if (
        not isinstance(token, str)
        or not cookie
        or not hmac.compare_digest(token, cookie)
        or not _same_origin(request)
    ):
        raise web.HTTPForbidden(text="This form has expired or came from another site.")
    username = str(form.get("username", "")).strip()[:100]
    password = str(form.get("password", ""))[:1000]
    service = request.app[SERVICE]
    store = service.store
    workers = request.app[PASSWORDS]
    if workers.full:
        # Refuse before touching the database: under a flood this is the common case.
        return _busy(request, username)
    now = service.clock()
    network = throttle_network(request_origin(request).ip)
    attempt = await store.accounts.reserve_login(username, network, now, LOGIN_LIMITS, allowed)
    if attempt is None:
        response = _login_form(
            request,
            error="Too many failed attempts. Wait 15 minutes and try again.",
            username=username,
            status=429,
        )
        response.headers["Retry-After"] = str(int(LOGIN_LIMITS.window.total_seconds()))
        return response
    admin = await store.accounts.admin_by_name(username) if username else None
    try:
        stored = admin.password_hash if admin else request.app[STAND_IN_HASH]
        ok = await workers.verify(stored, password)
    except PasswordsBusy:
        await store.accounts.forget_login(attempt)
        return _busy(request, username)
    if not ok or admin is None:
        return _login_form(
            request, error="Wrong username or password.", username=username, status=401
        )
    await store.accounts.login_succeeded(attempt)
    session_token = secrets.token_urlsafe(32)
    await store.accounts.add_session(
        _token_hash(session_token), admin.id, secrets.token_urlsafe(24), now, now + SESSION_TTL
    )
    response = web.HTTPSeeOther(_safe_next(str(form.get("next", ""))))
    response.set_cookie(
        COOKIE,
        session_token,
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        path="/admin",
        max_age=int(SESSION_TTL.total_seconds()),
    )
    response.del_cookie(LOGIN_COOKIE, path="/admin/login")
    raise response


def _busy(request: web.Request, username: str) -> web.Response:
    """503 for a login that found every password worker busy and the waiting room full."""
    response = _login_form(
        request,
        error="The server is busy. Wait a few seconds and try again.",
        username=username,
        status=503,
    )
    response.headers["Retry-After"] = str(BUSY_RETRY_AFTER)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /admin/logout (CSRF-checked by the middleware)."""
    token = request.cookies.get(COOKIE)
    if token:
        await request.app[SERVICE].store.accounts.delete_session(_token_hash(token))
    response = web.HTTPSeeOther("/admin/login")
    response.del_cookie(COOKIE, path="/admin")
    raise response


def require_admin(request: web.Request) -> None:
    """Pages only a full admin may use (coordinators get 403)."""
    if current(request).admin.role != "admin":
        raise web.HTTPForbidden(text="Only an admin can do this.")


def visible_groups(request: web.Request) -> set[int] | None:
    """The groups whose data this admin may see: None for all (admin), else their own."""
    admin = current(request).admin
    if admin.role == "admin":
        return None
    return {admin.group_id} if admin.group_id is not None else set()


def may_see_group(request: web.Request, group_id: int | None) -> bool:
    groups = visible_groups(request)
    return groups is None or (group_id is not None and group_id in groups)


def check_group(request: web.Request, group_id: int | None) -> None:
    """404 (not 403: do not confirm it exists) for another group's data."""
    if not may_see_group(request, group_id):
        raise web.HTTPNotFound(text="Not found.")
