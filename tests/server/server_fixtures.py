"""Builders for the server tests: constants, `onnxpress serve` processes, a keep-alive JSON client.

Imported by name (not from conftest, which collides with other test folders' conftest modules).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

TRANSLATOR = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_translator"  # read-only
GERMAN = ["Ein Mann fährt Fahrrad.", "Eine Frau liest ein Buch.", "Zwei Hunde spielen im Park.", "Ein Hund."]
TEXTS = [
    "stocks rally as oil prices fall", "team wins the game", "the election government minister talks",
    "new software for the phone", "apple and google report sales profit after the deal",
    "space science research", "coach says the player", "war and peace talks in the first week of the year",
]
READY_LINE = re.compile(r"serving \d+ model\(s\) at (http://[^\s\"]+)")


@dataclass
class Served:
    url: str
    proc: subprocess.Popen
    log: list[str] = field(default_factory=list)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(classifier_dir: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 60.0) -> Served:
    """`onnxpress serve` on 127.0.0.1, any free port; returns once it listens."""
    cmd = [sys.executable, "-m", "onnxpress.cli", "serve", "--name", f"clf={classifier_dir}",
           "--name", f"mt={TRANSLATOR}", "--port", "0", "--variant", "fp32", "--threads", "1", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    served = Served("", proc)
    found = threading.Event()

    def read() -> None:  # keep draining stderr so the server never blocks on a full pipe
        for line in proc.stderr:
            served.log.append(line)
            match = READY_LINE.search(line)
            if match and not found.is_set():
                served.url = match.group(1)
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    found.wait(timeout)
    if not served.url:
        served.stop()
        pytest.fail("server did not start:\n" + "".join(served.log[-30:]))
    return served


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name):
            head, _, value = line.rpartition(" ")
            got = head[len(name):].strip("{}")
            if head.split("{")[0] == name and ",".join(sorted(got.split(","))) == want:
                return float(value)
    return 0.0


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
