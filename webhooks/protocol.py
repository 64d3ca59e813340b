"""uvicorn's httptools protocol with a bound on the request head.

httptools buffers a header until it ends, with no limit, so one client could grow the
process without bound (200 MB in one header grew it by as much in a test). The head is fed
to the parser in slices; once a request's head passes MAX_HEAD_BYTES it is answered 400 and
the connection closed, as uvicorn does for any request it cannot parse.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Twilio's requests carry a few hundred bytes of headers; browsers stay under 16 KiB.
MAX_HEAD_BYTES = 64 * 1024
_SLICE = 8 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _in_head = True
    _head_bytes = 0

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        while self._in_head and data:
            piece, data = data[:_SLICE], data[_SLICE:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self.transport.is_closing():
                return
            if self._in_head and self._head_bytes > MAX_HEAD_BYTES:
                self.send_400_response("Request head too large.")
                return
        if data:
            super().data_received(data)
