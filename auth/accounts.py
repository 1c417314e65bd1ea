"""The account store: users, API tokens, sign-in failures and the audit log in the database."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from auth.passwords import hash_password, new_token, token_digest, verify_nothing, verify_password
from auth.roles import ROLES, Role

# Sign-in throttling over a rolling window: failures of one user name from one address and all
# failures from one address lock (429); the user name's failures from everywhere only slow it down.
FAILURE_WINDOW = timedelta(minutes=15)
MAX_PAIR_FAILURES = 5
MAX_IP_FAILURES = 30
DELAY_AFTER = 5
MAX_DELAY = 8.0


@dataclass(frozen=True)
class User:
    """A signed-in user (or the owner of an API token)."""

    id: int
    username: str
    role: Role
    areas: tuple[str, ...]
    display_name: str | None = None
    generation: int = 0  # session generation: sessions signed in at an older one are refused

    @property
    def scope(self) -> tuple[str, ...] | None:
        """Area codes the user is limited to (None: everything)."""
        return self.areas if self.role.scoped else None


def _user(row) -> User:
    """A User from a database row."""
    return User(row["id"], row["username"], ROLES[row["role"]], tuple(row["areas"] or ()),
                row["display_name"], row["session_generation"])  # fmt: skip


USER_COLUMNS = "id, username, role, areas, display_name, session_generation"


def add_user(conn: Connection, username: str, role: str, password: str, *, areas=(),
             display_name: str | None = None) -> User:  # fmt: skip
    """Create a user; district users need at least one area code that exists."""
    if role not in ROLES:
        raise ValueError(f"未知角色 {role}（可选：{', '.join(ROLES)}）")
    if ROLES[role].scoped and not areas:
        raise ValueError("district 角色至少需要一个 --area（区县或街道代码）")
    if conn.execute(text("SELECT 1 FROM app_user WHERE username = :u"), {"u": username}).first():
        raise ValueError(f"用户 {username} 已存在")
    missing = [a for a in areas if not conn.execute(
        text("SELECT 1 FROM admin_area WHERE code = :c"), {"c": a}).first()]  # fmt: skip
    if missing:
        raise ValueError(f"行政区划代码不存在：{', '.join(missing)}")
    row = conn.execute(text(
        f"INSERT INTO app_user (username, role, areas, password_hash, display_name) "
        f"VALUES (:u, :r, :a, :h, :d) RETURNING {USER_COLUMNS}"),
        {"u": username, "r": role, "a": list(areas), "h": hash_password(password),
         "d": display_name}).mappings().one()  # fmt: skip
    return _user(row)


def set_password(conn: Connection, username: str, password: str) -> None:
    """Replace a user's password (and re-enable the account); ends the user's sessions."""
    done = conn.execute(text(
        "UPDATE app_user SET password_hash = :h, password_changed_at = now(), active = true "
        "WHERE username = :u"), {"u": username, "h": hash_password(password)})  # fmt: skip
    if done.rowcount == 0:
        raise LookupError(f"没有用户 {username}")


def set_active(conn: Connection, username: str, active: bool) -> None:
    """Enable or disable a user; disabling also revokes their tokens and ends their sessions."""
    done = conn.execute(text("UPDATE app_user SET active = :a WHERE username = :u"),
                        {"u": username, "a": active})  # fmt: skip
    if done.rowcount == 0:
        raise LookupError(f"没有用户 {username}")
    if not active:
        conn.execute(text("UPDATE api_token SET revoked_at = now() WHERE revoked_at IS NULL AND "
                          "user_id = (SELECT id FROM app_user WHERE username = :u)"), {"u": username})  # fmt: skip


def list_users(conn: Connection) -> list[dict]:
    """All users without their hashes."""
    return [dict(r) for r in conn.execute(text(
        "SELECT id, username, role, areas, active, created_at FROM app_user ORDER BY id")).mappings()]  # fmt: skip


def count_users(conn: Connection) -> int:
    """Number of users."""
    return conn.execute(text("SELECT count(*) FROM app_user")).scalar()


def sign_in_delay(failures: int) -> float:
    """Seconds a sign-in waits after a user name's recent failures (from any address)."""
    return 0.0 if failures < DELAY_AFTER else min(2.0 ** (failures - DELAY_AFTER), MAX_DELAY)


def sign_in_throttle(conn: Connection, username: str, ip: str) -> tuple[bool, float]:
    """(refused, delay): refused after too many failures of this name from this address or of
    anything from this address within the window; else the delay the name's failures earn."""
    since = datetime.now(UTC) - FAILURE_WINDOW
    row = conn.execute(text(
        "SELECT count(*) FILTER (WHERE username = :u AND ip = :ip) AS pair, "
        "count(*) FILTER (WHERE ip = :ip) AS by_ip, count(*) FILTER (WHERE username = :u) AS by_user "
        "FROM login_failure WHERE at > :since AND (username = :u OR ip = :ip)"),
        {"u": username[:80], "ip": ip[:64], "since": since}).mappings().one()  # fmt: skip
    refused = row["pair"] >= MAX_PAIR_FAILURES or row["by_ip"] >= MAX_IP_FAILURES
    return refused, sign_in_delay(row["by_user"])


def authenticate(conn: Connection, username: str, password: str, ip: str) -> User | None:
    """The active user with these credentials, or None (and the failure is recorded). Unknown
    and disabled users cost one Argon2 verification too, so timing does not tell them apart."""
    row = conn.execute(text(
        f"SELECT {USER_COLUMNS}, active, password_hash FROM app_user WHERE username = :u"),
        {"u": username}).mappings().first()  # fmt: skip
    if row is None or not row["active"]:
        verify_nothing(password)
    elif verify_password(row["password_hash"], password):
        conn.execute(text("DELETE FROM login_failure WHERE username = :u AND ip = :ip"),
                     {"u": username, "ip": ip[:64]})  # fmt: skip
        return _user(row)
    conn.execute(text("INSERT INTO login_failure (username, ip) VALUES (:u, :ip)"),
                 {"u": username[:80], "ip": ip[:64]})  # fmt: skip
    return None


def user_by_id(conn: Connection, user_id: int) -> User | None:
    """An active user by id (sessions re-check on every request)."""
    row = conn.execute(text(f"SELECT {USER_COLUMNS} FROM app_user WHERE id = :i AND active"),
                       {"i": user_id}).mappings().first()  # fmt: skip
    return None if row is None else _user(row)


def end_sessions(conn: Connection, user_id: int) -> None:
    """Bump a user's session generation: every session signed in before stops working."""
    conn.execute(text("UPDATE app_user SET session_generation = session_generation + 1 "
                      "WHERE id = :i"), {"i": user_id})  # fmt: skip


def create_token(conn: Connection, username: str, name: str, days: int | None) -> tuple[int, str]:
    """A new API token for a user: (id, token); the token itself is never stored."""
    token = new_token()
    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    row = conn.execute(text(
        "INSERT INTO api_token (user_id, name, token_hash, expires_at) "
        "SELECT id, :n, :h, :e FROM app_user WHERE username = :u AND active RETURNING id"),
        {"u": username, "n": name, "h": token_digest(token), "e": expires}).first()  # fmt: skip
    if row is None:
        raise LookupError(f"没有启用的用户 {username}")
    return row[0], token


def user_for_token(conn: Connection, token: str) -> User | None:
    """The user of a valid (unrevoked, unexpired) token; `last_used_at` kept to the minute."""
    row = conn.execute(text(
        "SELECT t.id AS token_id, t.last_used_at, u.id, u.username, u.role, u.areas, u.display_name, "
        "u.session_generation "
        "FROM api_token t JOIN app_user u ON u.id = t.user_id WHERE t.token_hash = :h AND u.active "
        "AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())"),
        {"h": token_digest(token)}).mappings().first()  # fmt: skip
    if row is None:
        return None
    stale = datetime.now(UTC) - timedelta(minutes=1)
    if row["last_used_at"] is None or row["last_used_at"] < stale:  # not a write per tile request
        conn.execute(text("UPDATE api_token SET last_used_at = now() WHERE id = :i"),
                     {"i": row["token_id"]})  # fmt: skip
    return _user(row)


def list_tokens(conn: Connection) -> list[dict]:
    """All tokens (never their secret)."""
    return [dict(r) for r in conn.execute(text(
        "SELECT t.id, u.username, t.name, t.created_at, t.expires_at, t.revoked_at, t.last_used_at "
        "FROM api_token t JOIN app_user u ON u.id = t.user_id ORDER BY t.id")).mappings()]  # fmt: skip


def revoke_token(conn: Connection, token_id: int) -> None:
    """Revoke a token by id."""
    done = conn.execute(text("UPDATE api_token SET revoked_at = now() WHERE id = :i "
                             "AND revoked_at IS NULL"), {"i": token_id})  # fmt: skip
    if done.rowcount == 0:
        raise LookupError(f"没有可吊销的令牌 {token_id}")


def audit(conn: Connection, username: str | None, action: str, target: str | None = None,
          detail: dict | None = None, ip: str | None = None) -> None:  # fmt: skip
    """Append one entry to the audit log."""
    conn.execute(text("INSERT INTO audit_log (username, action, target, detail, ip) "
                      "VALUES (:u, :a, :t, CAST(:d AS jsonb), :ip)"),
                 {"u": username, "a": action, "t": target, "d": json.dumps(detail or {},
                  ensure_ascii=False, default=str), "ip": ip})  # fmt: skip


def audit_entries(conn: Connection, limit: int = 200) -> list[dict]:
    """Newest audit entries first."""
    return [dict(r) for r in conn.execute(text(
        "SELECT id, at, username, action, target, detail, ip FROM audit_log ORDER BY at DESC, id DESC "
        "LIMIT :l"), {"l": limit}).mappings()]  # fmt: skip
