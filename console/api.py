"""The JSON API under /api/ (CONTRACT section 12), beside the pages that show the same."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from console.app import Caller, Console
from console.service import BadRequest, Cancel, ConsoleService, Search, channel_of, limit_of
from console.users import Role

_SEARCH_PARAMS = ("recipient", "subject", "event_id", "q")


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} is required (a string)")
    return value


def routes(console: Console) -> list[BaseRoute]:
    def service() -> ConsoleService:
        return console.service  # built at start-up, read per request

    async def notifications(request: Request, caller: Caller) -> Response:
        given = [p for p in _SEARCH_PARAMS if request.query_params.get(p)]
        if len(given) != 1:
            return _error("give one of recipient, subject, event_id (or q)", 400)
        wanted = Search(
            given[0], request.query_params[given[0]], limit_of(request.query_params.get("limit"))
        )
        found = await service().notifications(caller.user, wanted)
        return JSONResponse({"notifications": found})

    async def notification(request: Request, caller: Caller) -> Response:
        found = await service().notification(caller.user, request.path_params["id"])
        if found is None:
            return _error("no such notification", 404)
        return JSONResponse(found)

    async def event(request: Request, caller: Caller) -> Response:
        return JSONResponse(await service().event(caller.user, request.path_params["id"]))

    async def recipient(request: Request, caller: Caller) -> Response:
        channel = channel_of(request.path_params["channel"])
        found = await service().recipient(caller.user, channel, request.path_params["recipient"])
        return JSONResponse(found)

    async def dead_letters(request: Request, caller: Caller) -> Response:
        return JSONResponse({"dead_letters": await service().dead_letters(caller.user)})

    async def replay(request: Request, caller: Caller) -> Response:
        done = await service().replay(caller.user, request.path_params["id"])
        if not done:
            return _error("no such dead letter", 404)
        return JSONResponse({"replayed": done})

    async def suppressions(request: Request, caller: Caller) -> Response:
        return JSONResponse({"suppressions": await service().suppressions(caller.user)})

    async def suppress(request: Request, caller: Caller) -> Response:
        body = await _body(request)
        channel, recipient = channel_of(body.get("channel")), _text(body, "recipient")
        added = await service().suppress(caller.user, channel, recipient, body.get("reason"))
        return JSONResponse({"added": added}, 201 if added else 200)

    async def lift(request: Request, caller: Caller) -> Response:
        body = await _body(request)
        channel, recipient = channel_of(body.get("channel")), _text(body, "recipient")
        return JSONResponse({"lifted": await service().lift(caller.user, channel, recipient)})

    async def cancel(request: Request, caller: Caller) -> Response:
        outcome = await service().cancel(caller.user, request.path_params["id"])
        if outcome is Cancel.NOT_FOUND:
            return _error("no such notification", 404)
        if outcome is Cancel.NOT_SCHEDULED:
            return _error("only a scheduled notification can be cancelled", 409)
        return JSONResponse({"id": request.path_params["id"], "status": "cancelled"})

    async def stream(request: Request, caller: Caller) -> Response:
        return JSONResponse(await service().stream())

    def api(path: str, role: Role, handler: Any, method: str = "GET") -> Route:
        endpoint = console.api(role, handler)

        async def answered(request: Request) -> Response:
            try:
                return await endpoint(request)
            except BadRequest as exc:
                return _error(str(exc), 400)

        return Route(path, answered, methods=[method])

    viewer, operator = Role.VIEWER, Role.OPERATOR
    return [
        api("/api/notifications", viewer, notifications),
        api("/api/notifications/{id:int}", viewer, notification),
        api("/api/notifications/{id:int}/cancel", operator, cancel, "POST"),
        api("/api/events/{id}", viewer, event),
        api("/api/recipients/{channel}/{recipient:path}", viewer, recipient),
        api("/api/dead-letters", viewer, dead_letters),
        api("/api/dead-letters/{id}/replay", operator, replay, "POST"),
        api("/api/suppressions", viewer, suppressions),
        api("/api/suppressions", operator, suppress, "POST"),
        api("/api/suppressions/lift", operator, lift, "POST"),
        api("/api/stream", viewer, stream),
    ]
