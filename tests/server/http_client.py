"""A small keep-alive JSON client for the server tests (one connection per thread)."""
from __future__ import annotations

import http.client
import json
import threading
from typing import Any
from urllib.parse import urlsplit


class Client(threading.local):
    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 30.0):
        parts = urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.headers = headers or {}
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        hdrs = {"Content-Type": "application/json", **self.headers, **(headers or {})}
        try:
            self.conn.request(method, path, body=data, headers=hdrs)
            resp = self.conn.getresponse()
            payload = resp.read()
        except Exception:
            self.conn.close()
            self.conn = None
            raise
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, payload = self.request(method, path, body, **kw)
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, payload.decode("utf-8", "replace")
