"""The HTTP/1.1 protocol membank serves with: uvicorn's httptools protocol, bounded.

httptools reads a request head of any size: one 64 MB header is buffered whole before
the application sees it. Here the head (request line and headers) is bounded in bytes
and in header count before authentication or routing runs; past either bound the
connection gets ``431 Request Header Fields Too Large`` (JSON) and is closed.
"""

from __future__ import annotations

from typing import Any

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_HEADERS", "MAX_HEAD_BYTES", "BoundedHttpToolsProtocol"]

#: Bytes of request line plus headers (nginx's large_client_header_buffers is 4 x 8k).
MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100


class _HeadTooLarge(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_size = 0
        self._header_count = 0
        self._in_head = True

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._head_size = 0
        self._header_count = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_size += len(name) + len(value) + 4
        if self._header_count > MAX_HEADERS:
            raise _HeadTooLarge(f"more than {MAX_HEADERS} headers")
        if self._head_size > MAX_HEAD_BYTES:
            raise _HeadTooLarge(f"request head over {MAX_HEAD_BYTES} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            # While one header is still arriving httptools buffers it whole: bound the
            # bytes received before the head completes (judged after the feed, as a
            # chunk may carry the end of the head and some body).
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(str(exc.__context__))
                return
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(f"request head over {MAX_HEAD_BYTES} bytes")

    def _bad_request(self) -> None:
        self.logger.warning("Invalid HTTP request received.")
        self._reply(400, "bad_request", "invalid HTTP request")

    def _refuse(self, why: str) -> None:
        self.logger.warning("request refused: %s", why)
        self._reply(431, "headers_too_large", f"request headers too large: {why}")

    def _reply(self, status: int, code: str, message: str) -> None:
        body = msgspec.json.encode({"error": {"code": code, "message": message, "details": {}}})
        reason = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}[status]
        head = [
            b"HTTP/1.1 " + str(status).encode() + b" " + reason,
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()
        self._in_head = False
