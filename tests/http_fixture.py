"""A tiny HTTP file server on 127.0.0.1 for download tests, with injectable faults.

Serves one file at ``/<name>`` with ``Range`` / ``If-Range`` / ``ETag`` / ``Last-Modified`` support.
Fault knobs (set attributes between or before requests; counts: 1 = once, -1 = always):

* ``reset_after`` + ``reset_times``: send only K body bytes, then drop the connection: with
  ``reset_kind="rst"`` a TCP reset (the client may lose unread bytes, so how many it keeps varies),
  with ``"fin"`` a clean close before the announced Content-Length (the client keeps exactly K);
* ``fail_status`` + ``fail_times``: answer with that HTTP status instead of the file;
* ``corrupt``: flip one byte of the body (same size, wrong checksum);
* ``next_version``: ``(content, etag)`` that replaces the file after the next request;
* ``honor_range=False``: ignore ``Range`` (always 200); ``send_validators=False``: no ETag/Last-Modified.

Every request is recorded in ``requests`` (``range``, ``if_range``, ``status``).
"""

from __future__ import annotations

import email.utils
import http.server
import os
import socket
import struct
import threading
import time
from typing import Any

_LAST_MODIFIED = email.utils.formatdate(1_600_000_000, usegmt=True)


class FileServer:
    """Serve ``content`` at ``url``; use as a context manager (starts/stops the server thread)."""

    def __init__(self, content: bytes, name: str = "archive.tar.xz", etag: str = '"v1"') -> None:
        self.content, self.name, self.etag = content, name, etag
        self.last_modified = _LAST_MODIFIED
        self.reset_after: int | None = None
        self.reset_times = 0
        self.reset_kind = "rst"
        self.fail_status: int | None = None
        self.fail_times = 0
        self.corrupt = False
        self.next_version: tuple[bytes, str] | None = None
        self.honor_range = True
        self.send_validators = True
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.files = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{self.name}"

    def __enter__(self) -> "FileServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _plan(self, headers: Any) -> dict[str, Any]:
        """Snapshot of what to serve for one request (and consume once-only faults)."""
        with self._lock:
            plan = {"content": self.content, "etag": self.etag, "fail": None, "reset": None}
            if self.fail_status is not None and self.fail_times:
                plan["fail"], self.fail_times = self.fail_status, self.fail_times - 1
            elif self.reset_after is not None and self.reset_times:
                plan["reset"], self.reset_times = self.reset_after, self.reset_times - 1
            record = {"range": headers.get("Range"), "if_range": headers.get("If-Range"), "status": None}
            self.requests.append(record)
            plan["record"] = record
            if self.next_version is not None:
                self.content, self.etag = self.next_version
                self.next_version = None
            return plan


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "FradTest/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        files: FileServer = self.server.files  # type: ignore[attr-defined]
        plan = files._plan(self.headers)
        record = plan["record"]
        if self.path != f"/{files.name}":
            record["status"] = 404
            self.send_error(404)
            return
        if plan["fail"] is not None:
            record["status"] = plan["fail"]
            self.send_error(plan["fail"])
            return
        body: bytes = plan["content"]
        if files.corrupt:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        start = self._range_start(files, plan["etag"])
        if start is not None and start >= len(body):
            record["status"] = 416
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = 200 if start is None else 206
        data = body[start or 0 :]
        record["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", "application/x-xz")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        if files.send_validators:
            self.send_header("ETag", plan["etag"])
            self.send_header("Last-Modified", files.last_modified)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        reset = plan["reset"]
        if reset is not None and reset < len(data):
            self.wfile.write(data[:reset])
            record["status"] = f"{status}+{files.reset_kind}"
            if files.reset_kind == "rst":
                time.sleep(0.05)  # usually lets the client read the K bytes before the RST discards them
                self._reset()
            self.close_connection = True
            return
        self.wfile.write(data)

    def _range_start(self, files: FileServer, etag: str) -> int | None:
        """First byte to send for a honoured ``Range: bytes=N-`` (None: send the whole file)."""
        value = self.headers.get("Range", "")
        if not files.honor_range or not value.startswith("bytes=") or not value.endswith("-"):
            return None
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range not in (etag, files.last_modified):
            return None  # validator changed: RFC 9110 says send the whole (new) file with 200
        return int(value[len("bytes=") : -1])

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0) instead of a clean close."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        os.close(self.connection.detach())  # detach: the handler's later flush/close become no-ops


class RouteServer:
    """Serve fixed answers on 127.0.0.1, one per path, for the link check: ``/ok`` the file (206 to a Range
    request), ``/missing`` 404, ``/forbidden`` 403, ``/moved`` a 302 to ``/ok``, ``/stall`` a connection that is
    accepted and never answered. Use as a context manager."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self._stop = threading.Event()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RouteHandler)
        self._httpd.daemon_threads = True
        self._httpd.routes = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{path}"

    def __enter__(self) -> "RouteServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _RouteHandler(http.server.BaseHTTPRequestHandler):
    server_version = "FradTest/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        routes: RouteServer = self.server.routes  # type: ignore[attr-defined]
        if self.path == "/stall":
            routes._stop.wait(30)  # say nothing until the server stops
            self.close_connection = True
            return
        if self.path in ("/missing", "/forbidden"):
            self.send_error(404 if self.path == "/missing" else 403)
            return
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = routes.content
        ranged = self.headers.get("Range") == "bytes=0-0"
        self.send_response(206 if ranged else 200)
        if ranged:
            self.send_header("Content-Range", f"bytes 0-0/{len(body)}")
            body = body[:1]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
