"""A small HTTP + WebSocket client for the Certus Assurance API.

Every non-2xx answer becomes an ``ApiError`` carrying the envelope's code and message, so the
command layer can print one clean line instead of a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
import websocket

from cli.config import ClientConfig
from cli.textsafe import visible

USER_AGENT = "certus-assurance-cli/0.1"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


class CliError(Exception):
    """Something the user should read; ``exit_code`` says how the process ends."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiError(CliError):
    def __init__(self, status: int, code: str, message: str, fields: dict[str, Any] | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message, exit_code=6 if status >= 500 else 5)
        self.status = status
        self.code = code
        self.fields = fields or {}
        self.request_id = request_id

    def describe(self) -> str:
        """The envelope as lines for a terminal; every field the service sent is escaped."""
        lines = [f"error {self.status} {visible(self.code)}: {visible(self.message)}"]
        for name, problems in sorted(self.fields.items()):
            text = "; ".join(map(visible, problems)) if isinstance(problems, list) else json.dumps(problems)
            lines.append(f"  {visible(name)}: {text}")
        if self.request_id:
            lines.append(f"  (request id {visible(self.request_id)})")
        return "\n".join(lines)


class Unreachable(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=6)


def scan_path(test_id: str, suffix: str = "") -> str:
    return f"/v1/security-scans/{quote(test_id, safe='')}{suffix}"


class Client:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        if config.api_key:
            self.session.headers["Authorization"] = f"Bearer {config.api_key}"

    # -- HTTP --------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.config.timeout)
        try:
            response = self.session.request(method, self.config.url + path, **kwargs)
        except requests.ConnectionError as exc:
            raise Unreachable(f"cannot reach {self.config.url}: connection failed") from exc
        except requests.Timeout as exc:
            raise Unreachable(f"{self.config.url} did not answer within {self.config.timeout:g}s") from exc
        except requests.RequestException as exc:
            raise Unreachable(f"request to {self.config.url} failed: {exc.__class__.__name__}") from exc
        if response.status_code >= 400:
            error = self._error(response)
            if error.status in (404, 405) and error.code in ("not_found", "method_not_allowed"):
                # The route itself is missing: say so instead of the framework's generic text.
                error.message = (f"this service has no {method} {path.split('?')[0]} endpoint "
                                 "(an older or differently configured version?)")
                error.code = "endpoint_not_found"
            raise error
        return response

    @staticmethod
    def _error(response: requests.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        envelope = body.get("error") if isinstance(body, dict) else None
        if isinstance(envelope, dict) and isinstance(envelope.get("code"), str):
            fields = envelope.get("fields") if isinstance(envelope.get("fields"), dict) else None
            return ApiError(response.status_code, envelope["code"], str(envelope.get("message", "")),
                            fields, envelope.get("request_id"))
        # Not our envelope: a proxy or load balancer answered.
        reason = response.reason or "error"
        return ApiError(response.status_code, f"http_{response.status_code}",
                        f"{reason} (the answer did not come from the Certus Assurance API)")

    def get_json(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def post_json(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {}).json()

    def patch_json(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, json=body).json()

    def download(self, path: str, dest: Path) -> int:
        response = self.request("GET", path, stream=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        size = 0
        with tmp.open("wb") as fh:
            for chunk in response.iter_content(64 * 1024):
                fh.write(chunk)
                size += len(chunk)
        tmp.replace(dest)
        return size

    # -- events ------------------------------------------------------------------------------
    def ws_url(self, test_id: str, after: str) -> str:
        base = self.config.url
        base = "wss://" + base[len("https://"):] if base.startswith("https://") else "ws://" + base[len("http://"):]
        return f"{base}{scan_path(test_id, '/stream')}?after={quote(after, safe='')}"

    def events(self, test_id: str, after: str = "0-0", *, follow: bool = True,
               transport: str = "auto", poll_interval: float = 1.0) -> Iterator[dict[str, Any]]:
        """Every event after ``after``, in order, once each. With ``follow`` it waits for new ones
        until ``scan_complete``; it reconnects from the last id it saw when a connection drops, and
        falls back to polling ``/events`` when WebSockets do not get through."""
        last = after
        if follow and transport in ("auto", "ws"):
            failures = 0
            while failures < 5:
                try:
                    for event in self._ws_events(test_id, last):
                        last = event["id"]
                        failures = 0
                        yield event
                        if event.get("type") == "scan_complete":
                            return
                    # closed normally without scan_complete (e.g. the server restarted): go again
                    failures += 1
                except _WsUnavailable:
                    if transport == "ws":
                        raise Unreachable("the WebSocket stream is not reachable") from None
                    break
                except _WsDropped:
                    failures += 1
                time.sleep(min(0.5 * 2 ** failures, 5))
        yield from self._poll_events(test_id, last, follow=follow, interval=poll_interval)

    def _ws_events(self, test_id: str, after: str) -> Iterator[dict[str, Any]]:
        headers = [f"User-Agent: {USER_AGENT}"]
        if self.config.api_key:
            headers.append(f"Authorization: Bearer {self.config.api_key}")
        try:
            ws = websocket.create_connection(self.ws_url(test_id, after), timeout=60, header=headers)
        except websocket.WebSocketBadStatusException as exc:
            if exc.status_code in (401, 403, 404):
                # Let the HTTP API explain (authentication, unknown scan) with its envelope.
                self.get_json(scan_path(test_id))
            raise _WsUnavailable() from exc
        except (OSError, websocket.WebSocketException) as exc:
            raise _WsUnavailable() from exc
        try:
            while True:
                try:
                    opcode, frame = ws.recv_data_frame(True)
                except websocket.WebSocketTimeoutException:
                    continue  # no event for a while; the server pings, keep waiting
                except (OSError, websocket.WebSocketException) as exc:
                    raise _WsDropped() from exc
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else 1005
                    if code == 4404:
                        raise ApiError(404, "scan_not_found", "no such scan")
                    if code == 4401 or code == 4403:
                        self.get_json(scan_path(test_id))  # raises the envelope's error
                    if code != 1000:
                        raise _WsDropped()
                    return
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    yield json.loads(frame.data)
        finally:
            ws.close()

    def _poll_events(self, test_id: str, after: str, *, follow: bool, interval: float) -> Iterator[dict[str, Any]]:
        while True:
            page = self.get_json(scan_path(test_id, "/events"), after=after, limit=500)
            yield from page.get("events", [])
            after = page.get("next_after") or after
            if page.get("complete"):
                return
            if not page.get("events"):
                if not follow:
                    return
                time.sleep(interval)


class _WsUnavailable(Exception):
    pass


class _WsDropped(Exception):
    pass
