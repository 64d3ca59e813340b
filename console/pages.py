"""The server-rendered pages: sign-in, search, a notification, an event, a recipient, and
the operations pages. Every change is a form POST with the session's CSRF token, answered
with a redirect (303) to the page it came from."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from console import auth, search
from console.app import Caller, Console
from console.service import BadRequest, Cancel, Search, channel_of
from console.users import Role


def _next(raw: str | None) -> str:
    """Only a path on this site: `//evil.example` and absolute URLs go to the search page."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    return raw


def _back(caller: Caller, target: str, flash: str) -> Response:
    if caller.session is not None:
        caller.session.flash = flash
    return RedirectResponse(target, 303)


def _flash(caller: Caller) -> str | None:
    if caller.session is None:
        return None
    flash, caller.session.flash = caller.session.flash, None
    return flash


def routes(console: Console) -> list[BaseRoute]:  # noqa: PLR0915 - one closure per page
    async def login_form(request: Request) -> Response:
        sid, session = console.session_of(request)
        if session is None:
            sid, session = console.sessions.new()
        response = console.render(
            request,
            None,
            "login.html",
            {"next": _next(request.query_params.get("next")), "error": None},
            csrf=session.csrf,
        )
        assert sid is not None
        console.set_cookie(request, response, sid)
        return response

    async def login(request: Request) -> Response:
        sid, session = console.session_of(request)
        form = await request.form()
        token, name, password = (str(form.get(k) or "") for k in ("csrf", "name", "password"))
        target = _next(str(form.get("next") or ""))
        if session is None or not auth.csrf_ok(session, token):
            return console.render(
                request,
                None,
                "error.html",
                {"message": "The sign-in form had expired; reload it."},
                403,
            )
        found = console.sign_in(name, password)
        if isinstance(found, float):
            error = f"Too many failed sign-ins for {name}; try again in {found:.0f} s."
            return console.render(
                request,
                None,
                "login.html",
                {"next": target, "error": error},
                429,
                csrf=session.csrf,
            )
        if found is None:
            return console.render(
                request,
                None,
                "login.html",
                {"next": target, "error": "Wrong name or password."},
                401,
                csrf=session.csrf,
            )
        console.sessions.end(sid)  # a new id at sign-in: the form's id never signs in
        new_sid, _ = console.sessions.new(found)
        response = RedirectResponse(target, 303)
        console.set_cookie(request, response, new_sid)
        return response

    async def logout(request: Request, caller: Caller) -> Response:
        sid, _ = console.session_of(request)
        console.sessions.end(sid)
        response = RedirectResponse("/login", 303)
        response.delete_cookie("notify_console", path="/")
        return response

    async def home(request: Request, caller: Caller) -> Response:
        q = request.query_params.get("q", "").strip()
        found = await console.service.notifications(caller.user, Search("q", q, 50)) if q else []
        # "Why did this event make nothing?" for what may be an event id, not a number.
        why = bool(q) and search.phone(q, console.settings.default_region) is None
        context = {"q": q, "notifications": found, "flash": _flash(caller), "why_link": why}
        return console.render(request, caller, "search.html", context)

    async def notification(request: Request, caller: Caller) -> Response:
        found = await console.service.notification(caller.user, request.path_params["id"])
        if found is None:
            return console.render(
                request, caller, "error.html", {"message": "No such notification."}, 404
            )
        return console.render(
            request, caller, "notification.html", {"n": found, "flash": _flash(caller)}
        )

    async def cancel(request: Request, caller: Caller) -> Response:
        notification_id = request.path_params["id"]
        outcome = await console.service.cancel(caller.user, notification_id)
        message = {
            Cancel.DONE: "Cancelled.",
            Cancel.NOT_FOUND: "No such notification.",
            Cancel.NOT_SCHEDULED: "Only a scheduled notification can be cancelled.",
        }[outcome]
        return _back(caller, f"/notifications/{notification_id}", message)

    async def event(request: Request, caller: Caller) -> Response:
        found = await console.service.event(caller.user, request.path_params["id"])
        return console.render(request, caller, "event.html", {"e": found})

    async def recipient(request: Request, caller: Caller) -> Response:
        try:
            channel = channel_of(request.path_params["channel"])
        except BadRequest as exc:
            return console.render(request, caller, "error.html", {"message": str(exc)}, 400)
        found = await console.service.recipient(
            caller.user, channel, request.path_params["recipient"]
        )
        return console.render(
            request, caller, "recipient.html", {"r": found, "flash": _flash(caller)}
        )

    async def recipient_of(request: Request, caller: Caller) -> Response:
        found = await console.service.recipient_of(caller.user, request.path_params["id"])
        if found is None:
            return console.render(
                request, caller, "error.html", {"message": "No such notification."}, 404
            )
        return console.render(
            request, caller, "recipient.html", {"r": found, "flash": _flash(caller)}
        )

    async def operations(request: Request, caller: Caller) -> Response:
        letters = await console.service.dead_letters(caller.user)
        stream = await console.service.stream()
        return console.render(
            request,
            caller,
            "operations.html",
            {"letters": letters, "stream": stream, "flash": _flash(caller)},
        )

    async def replay(request: Request, caller: Caller) -> Response:
        done = await console.service.replay(caller.user, request.path_params["id"])
        message = f"Replayed {done[0]} to the stream." if done else "No such dead letter."
        return _back(caller, "/operations", message)

    async def suppressions(request: Request, caller: Caller) -> Response:
        found = await console.service.suppressions(caller.user)
        return console.render(
            request, caller, "suppressions.html", {"suppressions": found, "flash": _flash(caller)}
        )

    async def suppress(request: Request, caller: Caller) -> Response:
        form = await request.form()
        try:
            channel = channel_of(form.get("channel"))
            recipient = str(form.get("recipient") or "")
            added = await console.service.suppress(
                caller.user, channel, recipient, form.get("reason") or "manual"
            )
        except BadRequest as exc:
            return _back(caller, "/suppressions", f"Not added: {exc}.")
        return _back(caller, "/suppressions", "Suppressed." if added else "Already suppressed.")

    async def lift(request: Request, caller: Caller) -> Response:
        form = await request.form()
        try:
            channel = channel_of(form.get("channel"))
        except BadRequest as exc:
            return _back(caller, "/suppressions", f"Not lifted: {exc}.")
        recipient = str(form.get("recipient") or "")
        lifted = await console.service.lift(caller.user, channel, recipient)
        back = _next(str(form.get("back") or "/suppressions"))
        return _back(caller, back, "Lifted." if lifted else "It was not suppressed.")

    page = console.page
    viewer, operator = Role.VIEWER, Role.OPERATOR
    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", page(viewer, logout), methods=["POST"]),
        Route("/", page(viewer, home)),
        Route("/notifications/{id:int}", page(viewer, notification)),
        Route("/notifications/{id:int}/cancel", page(operator, cancel), methods=["POST"]),
        Route("/notifications/{id:int}/recipient", page(viewer, recipient_of)),
        Route("/events/{id}", page(viewer, event)),
        Route("/recipients/{channel}/{recipient:path}", page(viewer, recipient)),
        Route("/operations", page(viewer, operations)),
        Route("/operations/dead-letters/{id}/replay", page(operator, replay), methods=["POST"]),
        Route("/suppressions", page(viewer, suppressions), methods=["GET"]),
        Route("/suppressions", page(operator, suppress), methods=["POST"]),
        Route("/suppressions/lift", page(operator, lift), methods=["POST"]),
    ]
