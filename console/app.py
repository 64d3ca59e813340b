"""The console's ASGI app (Starlette): who is asking, what they may do, and the headers
every answer carries. The routes are in console/api.py and console/pages.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import auth
from console.service import ConsoleService
from console.users import Role, User, verify
from notify import database
from notify.redis_clients import async_client
from notify.settings import Settings

HERE = Path(__file__).resolve().parent
# No inline script or style anywhere: the pages load /static/console.js and console.css.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Every answer, pages, API and static files alike, carries the CSP and its friends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def when(iso: str | None) -> str:
    """An ISO time as people read it: 2026-05-03 12:00:01 UTC (the API keeps ISO 8601)."""
    if not iso:
        return ""
    return iso[:19].replace("T", " ") + (" UTC" if iso.endswith("+00:00") else iso[26:])


def recipient_path(channel: str, recipient: str) -> str:
    return f"/recipients/{channel}/{quote(recipient, safe='')}"


@dataclass
class Caller:
    """A signed-in user, and their session when they came with a cookie (not Basic)."""

    user: User
    session: auth.Session | None


Handler = Callable[[Request, Caller], Awaitable[Response]]


class Console:
    def __init__(self, settings: Settings, users: dict[str, User]) -> None:
        self.settings = settings
        self.users = users
        self.sessions = auth.Sessions()
        self.throttle = auth.SignInThrottle()
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every {{ }} is escaped: event data, bodies, inbound SMS
            undefined=jinja2.StrictUndefined,
        )
        env.globals["recipient_path"] = recipient_path
        env.filters["when"] = when
        self.templates = Jinja2Templates(env=env)
        self._service: ConsoleService | None = None

    @property
    def service(self) -> ConsoleService:
        if self._service is None:
            raise RuntimeError("the console has not started")
        return self._service

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        db = await database.pool(
            self.settings.database_url,
            min_size=1,
            max_size=4,
            statement_cache_size=self.settings.statement_cache_size,
        )
        client = async_client(self.settings)
        self._service = ConsoleService(self.settings, db, client)
        try:
            yield
        finally:
            self._service.close()
            await client.aclose()
            await db.close()

    def build(self, routes: list[BaseRoute]) -> ASGIApp:
        static = Mount("/static", StaticFiles(directory=HERE / "static"), name="static")
        app = Starlette(routes=[*routes, static], lifespan=self.lifespan)
        return SecurityHeaders(app)

    # Who is asking

    def session_of(self, request: Request) -> tuple[str | None, auth.Session | None]:
        sid = request.cookies.get(auth.COOKIE)
        return sid, self.sessions.get(sid)

    def sign_in(self, name: str, password: str) -> User | float | None:
        """The user; or the seconds to wait (too many failures for this name); or None."""
        wait = self.throttle.wait(name)
        if wait > 0:
            return wait
        user = self.users.get(name)
        if not verify(user, password):
            self.throttle.failed(name)
            return None
        self.throttle.succeeded(name)
        return user

    def set_cookie(self, request: Request, response: Response, sid: str) -> None:
        response.set_cookie(
            auth.COOKIE,
            sid,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def api(self, role: Role, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """An API route: a session or HTTP Basic (401 without), the role (403), and for a
        POST a JSON body (415) and, with a session, its CSRF header (403)."""

        async def endpoint(request: Request) -> Response:
            caller = self._api_caller(request)
            if isinstance(caller, Response):
                return caller
            if not auth.allowed(caller.user, role):
                return JSONResponse({"error": f"needs the {role.label} role"}, 403)
            if request.method == "POST":
                kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind != "application/json":
                    return JSONResponse({"error": "Content-Type must be application/json"}, 415)
                token = request.headers.get("x-csrf-token")
                if caller.session is not None and not auth.csrf_ok(caller.session, token):
                    return JSONResponse({"error": "missing or wrong X-CSRF-Token"}, 403)
            return await handler(request, caller)

        return endpoint

    def _api_caller(self, request: Request) -> Caller | Response:
        credentials = auth.basic_credentials(request.headers.get("authorization"))
        if credentials is not None:
            found = self.sign_in(*credentials)
            if isinstance(found, float):
                headers = {"Retry-After": auth.retry_after(found)}
                return JSONResponse({"error": "too many failed sign-ins"}, 429, headers)
            if found is not None:
                return Caller(found, None)
        else:
            _, session = self.session_of(request)
            if session is not None and session.user is not None:
                return Caller(session.user, session)
        challenge = {"WWW-Authenticate": 'Basic realm="notify console"'}
        return JSONResponse({"error": "sign in"}, 401, challenge)

    def page(self, role: Role, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A page: a session (else to /login), the role (403), a CSRF token on a POST (403)."""

        async def endpoint(request: Request) -> Response:
            _, session = self.session_of(request)
            if session is None or session.user is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", 303)
            caller = Caller(session.user, session)
            if not auth.allowed(caller.user, role):
                return self.render(
                    request,
                    caller,
                    "error.html",
                    {
                        "message": (
                            f"This needs the {role.label} role; you are {caller.user.role.label}."
                        )
                    },
                    403,
                )
            if request.method != "POST":
                return await handler(request, caller)
            form = await request.form()
            try:
                token = form.get("csrf")
                if not auth.csrf_ok(session, token if isinstance(token, str) else None):
                    message = {"message": "The form had expired; try again."}
                    return self.render(request, caller, "error.html", message, 403)
                return await handler(request, caller)
            finally:
                await form.close()  # an uploaded file's spool

        return endpoint

    def render(
        self,
        request: Request,
        caller: Caller | None,
        template: str,
        context: dict[str, Any],
        status: int = 200,
        csrf: str | None = None,
    ) -> Response:
        user = caller.user if caller else None
        session = caller.session if caller else None
        base = {
            "user": user,
            "csrf": csrf or (session.csrf if session else ""),
            "operator": user is not None and user.role >= Role.OPERATOR,
            "grafana_url": self.settings.grafana_url,
        }
        return self.templates.TemplateResponse(request, template, {**base, **context}, status)
