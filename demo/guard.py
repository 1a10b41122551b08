"""An ASGI middleware in front of the Gradio app: what a request may be before Gradio sees it.

- Host must be one this server answers to (loopback names, the address it was started on,
  ``--allow-host`` names): a DNS-rebinding page cannot reach a demo on 127.0.0.1.
- A request with an Origin must come from the same origin as its Host: another site's page
  cannot drive the demo from a visitor's browser. (Gradio's CORS middleware only decides which
  response headers to send; a cross-site form POST would still run.)
- No uploads: no component of this demo takes a file, so /upload is refused outright
  (``launch_options`` also sets Gradio's ``max_file_size`` as a second fence).
- Bodies are capped (the largest legitimate one is a 10,000-character text, JSON-escaped).
Gradio 6 offers ``max_file_size`` and ``strict_cors`` but no Host or same-origin check:
this is passed to FastAPI through ``launch(app_kwargs={"middleware": [...]})``.
"""

from __future__ import annotations

import json
import socket
from typing import Iterable
from urllib.parse import urlsplit

MAX_BODY_BYTES = 512 * 1024
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD = ("0.0.0.0", "::", "")


def host_name(host_header: str) -> str:
    """"example.org:7860" -> "example.org"; "[::1]:7860" -> "::1"; lower-cased."""
    try:
        name = urlsplit(f"//{host_header}").hostname
    except ValueError:
        return ""
    return (name or "").lower()


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host names a server bound to ``bind`` answers to."""
    names = set(LOOPBACK) | {h.lower() for h in extra if h}
    if bind not in WILDCARD:
        names.add(bind.lower().strip("[]"))
    else:  # every interface: this machine's own names and addresses
        try:
            hostname = socket.gethostname()
            names.add(hostname.lower())
            names.update(socket.gethostbyname_ex(hostname)[2])
        except OSError:
            pass
    return frozenset(names)


class RequestGuard:
    """Pure ASGI (no body buffering): checks headers, then counts body bytes as they arrive."""

    def __init__(self, app, hosts: Iterable[str] = LOOPBACK, max_body: int = MAX_BODY_BYTES,
                 host_suffixes: tuple[str, ...] = ()):
        self.app, self.hosts, self.max_body = app, frozenset(hosts), max_body
        self.host_suffixes = host_suffixes  # e.g. ".gradio.live" with --share

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self.problem(scope, headers)
        if problem:
            status, text = problem
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _reply(send, status, text)
            return
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            receive = self._counting(receive)
        await self.app(scope, receive, send)

    def problem(self, scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        name = host_name(host)
        if name not in self.hosts and not (self.host_suffixes and name.endswith(self.host_suffixes)):
            return 421, f"unknown Host {host[:80]!r}: this demo answers to {', '.join(sorted(self.hosts))}"
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin) if origin != "null" else None
            if parts is None or parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
                return 403, "cross-origin request refused: the demo only answers its own pages"
        path = scope.get("path", "")
        if path.rstrip("/").endswith("/upload"):
            return 403, "uploads are off: no part of this demo takes a file"
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            return 400, "bad Content-Length"
        if length > self.max_body:
            return 413, f"request body of {length:,} bytes; the limit is {self.max_body:,}"
        return None

    def _counting(self, receive):
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:  # a chunked body without Content-Length: stop reading it
                    return {"type": "http.disconnect"}
            return message

        return counted


async def _reply(send, status: int, text: str) -> None:
    body = json.dumps({"error": text}).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
