"""A real WebSocket client reading a scan stream to its close frame."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import websocket


@dataclass
class StreamResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    # The handshake's response headers (lower-case names), e.g. which replica served the stream.
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


def read_stream(url: str, timeout: float = 60.0, headers: list[str] | None = None) -> StreamResult:
    ws = websocket.create_connection(url, timeout=timeout, header=headers or [])
    result = StreamResult(headers={k.lower(): v for k, v in (ws.getheaders() or {}).items()})
    try:
        while True:
            opcode, frame = ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                if len(frame.data) >= 2:
                    result.close_code = int.from_bytes(frame.data[:2], "big")
                    result.close_reason = frame.data[2:].decode("utf-8", "replace")
                return result
            if opcode == websocket.ABNF.OPCODE_TEXT:
                result.events.append(json.loads(frame.data))
    finally:
        ws.close()
