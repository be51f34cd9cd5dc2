"""Input checks every route applies, in one place for both protocols."""
from __future__ import annotations

import json
from typing import Any, Sequence

from onnxpress.errors import UserError
from onnxpress.runtime import beam_search
from onnxpress.runtime.server.errors import InvalidInput, TooLarge
from onnxpress.runtime.server.settings import Limits
from onnxpress.runtime.text_tokenizer import is_blank


def parse_json(body: bytes | memoryview, what: str = "the body") -> Any:
    """JSON from a request body, or InvalidInput. Lone surrogates are kept (as FastAPI parses
    bodies) for `check_texts` to name; nesting too deep to parse and integers over Python's
    digit limit are the sender's mistakes too. JSON over HTTP is UTF-8 (RFC 8259): json.loads would
    guess UTF-16 or UTF-32 from the bytes, so the body is decoded as UTF-8 first (a leading BOM is
    ignored, as the RFC allows)."""
    raw = bytes(body)
    skip = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        return json.loads(raw[skip:].decode("utf-8"))
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8: byte {skip + exc.start} is {raw[skip + exc.start:skip + exc.start + 1]!r}"
    except RecursionError:
        reason = "nested too deeply"
    except ValueError as exc:  # JSONDecodeError, and int() over Python's digit limit
        reason = str(exc)
        if "integer string conversion" in reason:
            reason = "an integer of more than 4,300 digits"
    raise InvalidInput(f"invalid request: {what} is not valid JSON ({reason})")


def check_texts(texts: Sequence[object], limits: Limits, where: str = "texts") -> list[str]:
    """The texts, or InvalidInput / TooLarge naming the first offending item."""
    if len(texts) == 0:
        raise InvalidInput(f"{where} is empty: send at least one text")
    if len(texts) > limits.max_texts:
        raise TooLarge(f"{where} holds {len(texts)} texts; the limit is {limits.max_texts} per request")
    out: list[str] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(f"{where}[{i}] is {type(text).__name__}, expected a string")
        if len(text) > limits.max_chars:  # first: is_blank walks the text on the event loop
            raise TooLarge(f"{where}[{i}] has {len(text)} characters; the limit is {limits.max_chars}")
        if is_blank(text):
            raise InvalidInput(f"{where}[{i}] is empty (no visible character)")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{where}[{i}] is not valid Unicode (a lone surrogate?)") from None
        out.append(text)
    return out


def check_beam_size(beam: object, limits: Limits) -> int | None:
    """A request's beam size (None: the artifact's), under the server's own bound."""
    if beam is None:
        return None
    try:
        return beam_search.check_beam_size(beam, limits.max_beam_size)
    except UserError as exc:
        raise InvalidInput(str(exc)) from None
