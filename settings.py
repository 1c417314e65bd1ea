"""Application settings (pydantic-settings): `ONEMAP_*` variables plus `DATABASE_URL`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent
LOCAL_URL_FILE = PROJECT_ROOT / "var" / "database_url"
BIGSCREEN_CONFIG = PROJECT_ROOT / "config" / "bigscreen.toml"


class DatabaseNotConfigured(RuntimeError):
    """Neither DATABASE_URL nor the project-local cluster is available."""


def to_sqlalchemy_url(url: str) -> str:
    """Turn the plain `postgresql://` form users copy into the psycopg 3 driver URL."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    """Everything configurable about one deployment."""

    model_config = SettingsConfigDict(
        env_prefix="ONEMAP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "ONEMAP_DATABASE_URL")
    )
    # Streaming replicas for reads (tiles, features, statistics, analyses), comma-separated; writes
    # always go to DATABASE_URL. A replica is used only while it has replayed every write this
    # worker saw on the primary within the last read_fence_s seconds (see docs/SCALING.md).
    read_database_url: str = ""
    read_fence_s: float = Field(default=1.0, ge=0, le=3600)
    replica_retry_s: float = Field(default=10.0, ge=0, le=3600)
    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=1, le=65535)
    debug: bool = False
    workers: int = Field(default=2, ge=1, le=64)
    title: str = "城管一张图"
    # Initial map view: Jinan (济南) city centre.
    map_center_lon: float = 117.02
    map_center_lat: float = 36.65
    map_zoom: int = Field(default=10, ge=0, le=22)
    tianditu_key: str = ""
    statement_timeout_ms: int = Field(default=30_000, ge=100)
    tile_cache_mb: int = Field(default=256, ge=0)
    # Sessions are signed with this key (default: a random key kept in var/secret_key).
    secret_key: str = ""
    # Idle lifetime of a session (the cookie's signature is renewed on every request).
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    # Absolute lifetime: a session older than this since sign-in is refused however active it is.
    session_absolute_hours: int = Field(default=12, ge=1, le=24 * 30)
    # How long a worker trusts a looked-up user (disabling or revoking takes effect within it).
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    secure_cookies: bool = False  # set true behind HTTPS
    # Reverse proxies in front of the app whose X-Forwarded-For is trusted (0: none, use the peer).
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    # The origin users reach the app at (e.g. https://onemap.example.gov.cn); when set, Origin or
    # Referer of state-changing requests must match it exactly instead of the request's Host.
    public_origin: str = ""
    max_upload_mb: int = Field(default=50, ge=1)
    # Pages allowed to embed the dashboard in a frame (e.g. the big-screen portal); empty: none.
    frame_ancestors: str = ""
    # Password for the first admin created by `make run`; empty: a one-time password is printed.
    admin_password: str = ""
    # Size of the demo city `make run` loads into an empty database.
    demo_scale: Literal["small", "city", "large"] = "city"
    # The big screen (/bigscreen): its views (TOML, default config/bigscreen.toml), how often it
    # refreshes and rotates (seconds; a screen's URL may ask ?refresh=&rotate= within limits), and
    # its "now": the clock (today) or the newest case (latest: replaying demo data).
    bigscreen_config: str = ""
    bigscreen_refresh_s: int = Field(default=30, ge=2, le=3600)
    bigscreen_rotate_s: int = Field(default=60, ge=5, le=86_400)
    bigscreen_day: Literal["today", "latest"] = "today"

    @field_validator("database_url")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v or None

    @field_validator("public_origin")
    @classmethod
    def _origin_only(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        parts = urlsplit(v)
        if v and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path
                  or parts.query or parts.fragment):  # fmt: skip
            raise ValueError("ONEMAP_PUBLIC_ORIGIN 应形如 https://onemap.example.gov.cn")
        return v

    def bigscreen_config_path(self) -> Path:
        """Where the big screen's views are configured."""
        return Path(self.bigscreen_config) if self.bigscreen_config else BIGSCREEN_CONFIG

    def read_sqlalchemy_urls(self) -> list[str]:
        """The replica URLs for SQLAlchemy (empty: every read goes to the primary)."""
        return [to_sqlalchemy_url(u.strip()) for u in self.read_database_url.split(",")
                if u.strip()]  # fmt: skip

    def sqlalchemy_url(self) -> str:
        """The database URL for SQLAlchemy, falling back to the project-local cluster."""
        url = self.database_url
        if url is None and LOCAL_URL_FILE.exists():
            url = LOCAL_URL_FILE.read_text(encoding="utf-8").strip()
        if not url:
            raise DatabaseNotConfigured(
                "未配置数据库：请设置 DATABASE_URL，或先运行 `make run` 启动项目内置的 PostGIS。"
            )
        return to_sqlalchemy_url(url)
