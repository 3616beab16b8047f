"""Admin accounts (admins and group coordinators), their sessions and login attempts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from component.core.login_throttle import LoginLimits, LoginRecord
from component.store.db import Database, iso

# Every this many login attempts, `reserve_login` deletes the ones no rule needs any more.
PRUNE_EVERY = 256


@dataclass(frozen=True, slots=True)
class Admin:
    id: int
    username: str
    password_hash: str
    role: str  # 'admin' | 'coordinator'
    group_id: int | None


@dataclass(frozen=True, slots=True)
class AdminSession:
    admin: Admin
    csrf: str
    expires_at: datetime


class AccountStore:
    """`store.accounts`: used by the admin pages' login and session handling and by the
    CLI's account commands."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_admin(
        self, username: str, password_hash: str, role: str, group_id: int | None, now: datetime
    ) -> int:
        return await self._db.write(
            "INSERT INTO admins (username, password_hash, role, group_id, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (username, password_hash, role, group_id, iso(now)),
        )

    async def set_admin_password(self, admin_id: int, password_hash: str) -> None:
        await self._db.write(
            "UPDATE admins SET password_hash = ? WHERE id = ?", (password_hash, admin_id)
        )

    async def admin_by_name(self, username: str) -> Admin | None:
        row = await self._db.one("SELECT * FROM admins WHERE username = ?", (username,))
        return (
            Admin(row["id"], row["username"], row["password_hash"], row["role"], row["group_id"])
            if row
            else None
        )

    async def admins(self) -> list[Admin]:
        rows = await self._db.all("SELECT * FROM admins ORDER BY username")
        return [
            Admin(r["id"], r["username"], r["password_hash"], r["role"], r["group_id"])
            for r in rows
        ]

    async def delete_admin(self, admin_id: int) -> None:
        await self._db.write("DELETE FROM admins WHERE id = ?", (admin_id,))

    async def add_session(
        self, token_hash: str, admin_id: int, csrf: str, now: datetime, expires_at: datetime
    ) -> None:
        await self._db.write(
            "INSERT INTO admin_sessions (token_hash, admin_id, csrf, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (token_hash, admin_id, csrf, iso(now), iso(expires_at)),
        )

    async def session(self, token_hash: str, now: datetime) -> AdminSession | None:
        row = await self._db.one(
            "SELECT s.csrf, s.expires_at, a.* FROM admin_sessions s"
            " JOIN admins a ON a.id = s.admin_id WHERE s.token_hash = ? AND s.expires_at > ?",
            (token_hash, iso(now)),
        )
        if row is None:
            return None
        admin = Admin(
            row["id"], row["username"], row["password_hash"], row["role"], row["group_id"]
        )
        return AdminSession(admin, row["csrf"], datetime.fromisoformat(row["expires_at"]))

    async def extend_session(self, token_hash: str, expires_at: datetime) -> None:
        await self._db.write(
            "UPDATE admin_sessions SET expires_at = ? WHERE token_hash = ?",
            (iso(expires_at), token_hash),
        )

    async def delete_session(self, token_hash: str) -> None:
        await self._db.write("DELETE FROM admin_sessions WHERE token_hash = ?", (token_hash,))

    async def delete_sessions_of(self, admin_id: int) -> None:
        await self._db.write("DELETE FROM admin_sessions WHERE admin_id = ?", (admin_id,))

    async def reserve_login(
        self,
        username: str,
        network: str,
        now: datetime,
        limits: LoginLimits,
        allow: Callable[[LoginRecord, LoginLimits], bool],
    ) -> int | None:
        """Record a login attempt as failed, unless `allow` refuses it; returns the
        attempt's id, or None when refused (nothing is recorded then).

        Called by the login handler before it checks the password. Counting and
        recording happen in one transaction, so simultaneous attempts are counted one
        after the other; the attempt counts as failed until `login_succeeded` says
        otherwise (a password check that never finishes is a guess all the same).
        """
        since = iso(now - limits.window)
        async with self._db.transaction() as execute:
            row = await self._db.one(
                "SELECT"
                " (SELECT COUNT(*) FROM login_attempts WHERE username = ? AND address = ?"
                "   AND ok = 0 AND created_at > ? AND created_at > COALESCE((SELECT"
                "   MAX(created_at) FROM login_attempts WHERE username = ? AND address = ?"
                "   AND ok = 1), '')),"
                " (SELECT COUNT(*) FROM login_attempts WHERE address = ? AND ok = 0"
                "   AND created_at > ?),"
                " (SELECT COUNT(*) FROM login_attempts WHERE username = ? AND ok = 0"
                "   AND created_at > ?),"
                " EXISTS (SELECT 1 FROM login_attempts WHERE username = ? AND address = ?"
                "   AND ok = 1 AND created_at > ?)",
                (
                    *(username, network, since, username, network),
                    *(network, since),
                    *(username, since),
                    *(username, network, iso(now - limits.known_good_for)),
                ),
            )
            assert row is not None
            record = LoginRecord(int(row[0]), int(row[1]), int(row[2]), bool(row[3]))
            if not allow(record, limits):
                return None
            attempt = await execute(
                "INSERT INTO login_attempts (username, address, ok, created_at)"
                " VALUES (?, ?, 0, ?)",
                (username, network, iso(now)),
            )
            if attempt % PRUNE_EVERY == 0:
                # Now and then, forget what no rule looks at any more: failures past the
                # window, successes past the known-good period. Bounds the table however
                # long an attack goes on, at the cost of one scan per PRUNE_EVERY attempts.
                await execute(
                    "DELETE FROM login_attempts WHERE (ok = 0 AND created_at <= ?)"
                    " OR created_at <= ?",
                    (since, iso(now - limits.known_good_for)),
                )
            return attempt

    async def login_succeeded(self, attempt_id: int) -> None:
        """Mark a reserved attempt as a success (the password was right)."""
        await self._db.write("UPDATE login_attempts SET ok = 1 WHERE id = ?", (attempt_id,))

    async def forget_login(self, attempt_id: int) -> None:
        """Drop a reserved attempt whose password was never checked (the server was too
        busy to): it was no guess, so it must not count against anyone."""
        await self._db.write("DELETE FROM login_attempts WHERE id = ?", (attempt_id,))
