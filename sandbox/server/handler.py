"""HTTP plumbing: a keep-alive threaded server and the request handler.

Besides answering, the handler can misbehave on purpose (sandbox.control.faults actions): drop
the connection without an answer, reset it, or answer late; and the server can stop
listening for a while, so new connections are refused as by a host that is down.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from sandbox.control import api as control
from sandbox.google import oauth, push
from sandbox.server.protocol import Reply, Request, json_reply
from sandbox.server.state import State
from sandbox.twilio import sms

logger = logging.getLogger("sandbox")

_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_Socket = socket.socket | tuple[bytes, socket.socket]


def dispatch(state: State, req: Request) -> Reply:
    if req.path.startswith(sms.PREFIX):
        return sms.route(state, req)
    if req.path.startswith(push.PREFIX):
        return push.route(state, req)
    if req.path == oauth.PATH:
        return oauth.route(state, req)
    if req.path.startswith(control.PREFIX):
        return control.route(state, req)
    return json_reply(404, {"error": f"no route for {req.method} {req.path}"})


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 + exact Content-Length lets SDK sessions keep connections alive.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in one write, but also avoid Nagle/delayed-ACK stalls.
    disable_nagle_algorithm = True
    server_version = "provider-sandbox"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: per-request stderr lines would dominate the cost."""

    def _serve(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._write(json_reply(411, {"error": "Content-Length required"}))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._write(json_reply(400, {"error": "bad Content-Length"}))
            return
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(self.command, path, query, headers, body)
        server = cast(Server, self.server)
        try:
            reply = server.dispatch(server.state, req)
        except Exception:
            logger.exception("sandbox failed on %s %s", self.command, path)
            reply = json_reply(500, {"error": "sandbox internal error"})
        if reply.action in ("drop", "reset"):
            self._hang_up(reset=reply.action == "reset")
            return
        if reply.action == "timeout" and server.stopping.wait(reply.delay_s):
            return  # the sandbox stopped meanwhile
        if reply.before_write is not None:
            reply.before_write(self.connection)
        self._write(reply)

    def _hang_up(self, *, reset: bool) -> None:
        """Close without answering: a FIN after a dropped request, or an RST."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            if reset:
                # Linger 0: close() sends RST instead of FIN, "connection reset by peer".
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)

    def _write(self, reply: Reply) -> None:
        lines = [
            f"HTTP/1.1 {reply.status} {_PHRASES.get(reply.status, 'Unknown')}",
            f"Content-Type: {reply.content_type}",
            f"Content-Length: {len(reply.body)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in reply.headers)
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + reply.body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Bursts of new connections must queue, not get refused.
    request_queue_size = 1024
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        state: Any,
        dispatcher: Callable[[Any, Request], Reply] = dispatch,
    ) -> None:
        """`dispatcher` answers each request from `state`: the Twilio/Google routes by
        default, or another emulator's (sandbox/vonage) on a server of its own."""
        self.state = state
        self.dispatch = dispatcher
        self.stopping = threading.Event()  # cuts short late answers on stop()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        # Guards listening: serving thread, pause timer, stop.
        self._listen_lock = threading.Lock()
        self._serving: threading.Thread | None = None
        self._resume: threading.Timer | None = None
        super().__init__(address, Handler)

    def serve_in_background(self) -> None:
        with self._listen_lock:
            self._serve()

    def stop(self) -> None:
        with self._listen_lock:
            self.stopping.set()
            if self._resume is not None:
                self._resume.cancel()
                self._resume = None
            else:
                self._stop_serving()
        self.server_close()
        self.close_connections()

    def refuse_for(self, seconds: float, keep: socket.socket | None = None) -> None:
        """Stop listening for `seconds`: connects are refused, open connections closed.

        `keep` (the control call asking for it) stays open to get its answer. Asking again
        while refusing restarts the period.
        """
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._listen_lock:
            if self.stopping.is_set():
                return
            if self._resume is not None:
                self._resume.cancel()
            else:
                self._stop_serving()
                self.socket.close()
                self.close_connections(keep)
            self._resume = threading.Timer(seconds, self._listen_again)
            self._resume.daemon = True
            self._resume.start()

    def _listen_again(self) -> None:
        with self._listen_lock:
            if self.stopping.is_set() or self._resume is None:
                return
            self._resume = None
            # Same port (SO_REUSEADDR is on), so clients' configured URL works again.
            self.socket = socket.socket(self.address_family, self.socket_type)
            try:
                self.server_bind()
                self.server_activate()
            except OSError:
                logger.exception("sandbox could not listen again on %s", self.server_address)
                return
            self._serve()

    def _serve(self) -> None:
        self._serving = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},  # bounds how long stop() waits
            name=f"sandbox-{self.server_address[1]}",
            daemon=True,
        )
        self._serving.start()

    def _stop_serving(self) -> None:
        if self._serving is not None:
            self.shutdown()
            self._serving.join()
            self._serving = None

    def process_request(self, request: _Socket, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Socket) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self, keep: socket.socket | None = None) -> None:
        """Unblock keep-alive handler threads so a stopped server stops answering."""
        with self._connections_lock:
            connections = [c for c in self._connections if c is not keep]
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: _Socket, client_address: Any) -> None:
        # Clients hanging up mid-request are normal under load; stay quiet.
        if isinstance(sys.exc_info()[1], OSError):
            return
        logger.exception("sandbox connection error from %s", client_address)
