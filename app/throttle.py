"""Login throttling: too many failed logins for one user name, or from one address, within a
window are answered 429 (with `Retry-After`) until the oldest failure leaves the window.

One `LoginThrottle` per server process guards both `POST /api/auth/token` and the
dashboard's `POST /login` (through `LoginThrottleMiddleware`). Every failed login is logged
with its user name and address (never the password).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger("app.auth")


class TooManyAttempts(PermissionError):
    """A user name or an address failed to log in too often (HTTP 429)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class LoginThrottle:
    """Failure counts per user name and per address, over a sliding window of seconds."""

    def __init__(
        self,
        per_user: int = 5,
        per_address: int = 20,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_user, self.per_address, self.window = per_user, per_address, window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def check(self, username: str, address: str) -> None:
        """Raise `TooManyAttempts` when this user name or address may not try now."""
        now = self._clock()
        with self._lock:
            for key, limit, what in (
                (f"u:{username}", self.per_user, f"user {username!r}"),
                (f"a:{address}", self.per_address, f"address {address}"),
            ):
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = self.window - (now - times[0])
                    raise TooManyAttempts(
                        f"too many failed logins for {what}: {len(times)} in the last "
                        f"{self.window:.0f} s; try again in {math.ceil(wait)} s",
                        wait,
                    )

    def failed(self, username: str, address: str, where: str) -> None:
        """Count a failed login and log it."""
        now = self._clock()
        with self._lock:
            for key in (f"u:{username}", f"a:{address}"):
                self._failures.setdefault(key, deque()).append(now)
        log.warning("failed login for user %r from %s (%s)", username[:100], address, where)


def client_address(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class LoginThrottleMiddleware:
    """ASGI middleware: the dashboard's `POST /login` form goes through the throttle (its
    answer 400 counts as a failure; a throttled attempt never reaches the password check)."""

    def __init__(
        self, app: Any, throttle: LoginThrottle, paths: tuple[str, ...] = ("/login", "/login/")
    ):
        self.app, self.throttle, self.paths = app, throttle, paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > 65536:
                break
        form = parse_qs(body.decode("latin-1"))
        username = (form.get("username") or [""])[0].strip()
        address = client_address(scope)
        try:
            self.throttle.check(username, address)
        except TooManyAttempts as err:
            payload = json.dumps({"detail": str(err)}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"retry-after", str(err.retry_after).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] in (400, 401):
                self.throttle.failed(username, address, "dashboard")
            await send(message)

        await self.app(scope, replay, watch)
