"""The server's log lines on stderr: plain text for people, or one JSON object per line for log shippers.

The access log (`onnxpress.access`) is JSON lines in both formats. With `--log-format json` every
other line is JSON too: the start-up lines, uvicorn's own messages and tracebacks (as `exception`).
"""
from __future__ import annotations

import json
import logging
import sys
import time

ACCESS_LOGGER = "onnxpress.access"
FORMATS = ("text", "json")


class JsonLines(logging.Formatter):
    """One JSON object per record; the access log's lines are JSON already and pass unchanged."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == ACCESS_LOGGER:
            return record.getMessage()
        entry = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(level: str, log_format: str) -> None:
    """Route every logger (uvicorn's included) to stderr in `log_format` at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter("%(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def announce(message: str, log_format: str) -> None:
    """A start-up line, shown whatever the log level: `onnxpress: message`, or a JSON object."""
    if log_format == "json":
        line = json.dumps({"ts": round(time.time(), 3), "level": "info", "logger": "onnxpress.server",
                           "message": message})
    else:
        line = f"onnxpress: {message}"
    print(line, file=sys.stderr, flush=True)
