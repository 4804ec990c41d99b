"""Optional login: users from `PROPETL_USERS`, signed API tokens, revocation, ownership.

Login is on when `PROPETL_AUTH_ENABLED=true`; users are `name:password` pairs separated by
commas in `PROPETL_USERS`, and `PROPETL_ADMINS` names users who may act on anyone's work.
Tokens are HMAC-signed (`PROPETL_SECRET_KEY`, or a random key kept in the data dir) and a
revoked token is listed in `revoked_tokens.json` there, so every process agrees.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from .settings import Settings, get_settings

_lock = threading.Lock()


class AuthError(PermissionError):
    """No valid login (HTTP 401)."""


class ForbiddenError(PermissionError):
    """Logged in, but the work belongs to someone else (HTTP 403)."""


class _UserSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROPETL_", extra="ignore")
    users: str = ""
    admins: str = ""
    token_ttl: float = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Auth:
    """The login rules of one process (read from the environment by `get_auth()`)."""

    enabled: bool
    users: dict[str, str] = field(repr=False)  # passwords: never in a repr or a log
    admins: frozenset[str]
    default_owner: str
    secret: bytes = field(repr=False)
    revoked_path: Path
    token_ttl: float

    # --- users -------------------------------------------------------------------------

    def check_password(self, username: str, password: str) -> bool:
        """True when `username` exists and `password` is theirs (constant-time compare)."""
        expected = self.users.get(username)
        return expected is not None and hmac.compare_digest(expected.encode(), password.encode())

    def owner_for(self, username: str | None) -> str:
        """The owner recorded for work done by `username` (the default owner without login)."""
        return username if self.enabled and username else self.default_owner

    def can_access(self, username: str | None, owner: str | None) -> bool:
        """True when `username` may see or change work owned by `owner` (their own work,
        or anyone's for an admin; everything with login off)."""
        if not self.enabled or owner is None:
            return True
        return username == owner or username in self.admins

    def ensure_owner(self, username: str | None, owner: str | None) -> None:
        """Raise `ForbiddenError` when `username` may not see or change work of `owner`."""
        if not self.can_access(username, owner):
            raise ForbiddenError(f"this belongs to {owner!r}; you are {username!r}")

    def visible_owner(self, username: str | None, owner: str | None) -> str | None:
        """The owner filter of a listing: a user who is not an admin sees only their own
        work (asking for someone else's gives `ForbiddenError`)."""
        if not self.enabled or username in self.admins:
            return owner
        self.ensure_owner(username, owner)
        return username

    # --- tokens ------------------------------------------------------------------------

    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()

    def issue_token(self, username: str) -> str:
        """A signed token naming `username`, valid for `token_ttl` seconds."""
        payload = json.dumps({"u": username, "t": int(time.time()), "n": secrets.token_hex(8)})
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{body}.{self._sign(body)}"

    def _payload(self, token: str) -> dict[str, object]:
        body, _, signature = token.strip().partition(".")
        # header values arrive as latin-1 text: compare bytes (compare_digest refuses
        # non-ASCII str), so any byte sequence is just an invalid token
        if not body or not hmac.compare_digest(
            self._sign(body).encode(), signature.encode("utf-8", "replace")
        ):
            raise AuthError("invalid token")
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError as err:
            raise AuthError("invalid token") from err
        if not isinstance(data, dict):
            raise AuthError("invalid token")
        return data

    def verify_token(self, token: str) -> str:
        """The user a token names; raises `AuthError` if forged, expired, revoked or orphaned."""
        data = self._payload(token)
        user, issued, nonce = str(data.get("u")), data.get("t"), str(data.get("n"))
        if not isinstance(issued, int) or time.time() - issued > self.token_ttl:
            raise AuthError("token expired; ask for a new one")
        if nonce in self._revoked():
            raise AuthError("token revoked")
        if user not in self.users:
            raise AuthError(f"unknown user {user!r}")
        return user

    def revoke_token(self, token: str) -> None:
        """Refuse `token` from now on (in every process sharing the data dir)."""
        nonce = str(self._payload(token).get("n"))
        with _lock:
            revoked = self._revoked()
            revoked.add(nonce)
            self.revoked_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.revoked_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(sorted(revoked)))
            os.replace(tmp, self.revoked_path)

    def _revoked(self) -> set[str]:
        try:
            return set(json.loads(self.revoked_path.read_text()))
        except (OSError, ValueError):
            return set()


def _parse_users(text: str) -> dict[str, str]:
    users = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, password = item.partition(":")
        if not sep or not name.strip() or not password:
            raise ValueError(f"PROPETL_USERS: expected name:password, got {item.split(':')[0]!r}")
        users[name.strip()] = password
    return users


def _secret(settings: Settings) -> bytes:
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.data_dir / "secret_key"
    with _lock:
        if not path.exists():
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


def get_auth(settings: Settings | None = None) -> Auth:
    """The login rules for `settings` (default: the process settings) and the environment."""
    settings = settings or get_settings()
    extra = _UserSettings()
    users = _parse_users(extra.users)
    if settings.auth_enabled and not users:
        raise ValueError("PROPETL_AUTH_ENABLED is set but PROPETL_USERS names no user")
    admins = frozenset(a.strip() for a in extra.admins.split(",") if a.strip())
    return Auth(
        enabled=settings.auth_enabled,
        users=users,
        admins=admins,
        default_owner=settings.default_owner,
        secret=_secret(settings) if settings.auth_enabled else b"",
        revoked_path=settings.data_dir / "revoked_tokens.json",
        token_ttl=extra.token_ttl,
    )
