"""Sign-in on the Flask server: sessions, bearer tokens, the request guard, CSRF, headers."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import timedelta
from urllib.parse import urlencode, urlparse

from flask import Flask, g, jsonify, redirect, render_template_string, request, session

from auth import accounts
from auth.passwords import token_digest
from errors import Forbidden, Unauthorized
from runtime import runtime
from settings import PROJECT_ROOT, Settings

PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/login", "/logout", "/_favicon.ico")
SECRET_FILE = PROJECT_ROOT / "var" / "secret_key"
LOGIN_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>登录 · {{ title }}</title>
<link rel="stylesheet" href="/assets/style.css"></head>
<body class="login-body"><form class="login-form" method="post" action="/login">
<h1>{{ title }}</h1>
{% if message %}<p class="error" id="login-error">{{ message }}</p>{% endif %}
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<label>用户名<input name="username" id="username" autocomplete="username" required></label>
<label>密码<input name="password" id="password" type="password" autocomplete="current-password" required></label>
<button type="submit" id="login-submit">登录</button>
<p class="hint">首次使用：管理员密码在 <code>make run</code> 的输出中，或运行
<code>python -m loaders user reset admin</code> 重新生成。</p>
</form></body></html>"""


def secret_key(settings: Settings) -> str:
    """The session signing key: from settings, else a file under var/ shared by all workers."""
    if settings.secret_key:
        return settings.secret_key
    if not SECRET_FILE.exists():
        SECRET_FILE.parent.mkdir(exist_ok=True)
        SECRET_FILE.touch(mode=0o600)
        SECRET_FILE.write_text(secrets.token_urlsafe(48), encoding="utf-8")
    return SECRET_FILE.read_text(encoding="utf-8").strip()


def current_user() -> accounts.User:
    """The user of this request (the guard has already refused anonymous requests)."""
    user = g.get("user")
    if user is None:
        raise Unauthorized("请先登录")
    return user


def client_ip() -> str:
    """The caller's address as the server sees it."""
    return request.remote_addr or "?"


class RecentUsers:
    """Users looked up in the last few seconds, per worker: a map view fires dozens of tile
    requests at once, and each would otherwise cost a database round trip. A disabled user or a
    revoked token stops working within `ttl` seconds."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self.items: dict[str, tuple[float, accounts.User | None]] = {}
        self.lock = threading.Lock()

    def get(self, key: str, load) -> accounts.User | None:
        """The cached user for a credential, or load it (and remember it briefly)."""
        now = time.monotonic()
        with self.lock:
            hit = self.items.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = load()
        with self.lock:
            if len(self.items) > 10_000:
                self.items.clear()
            self.items[key] = (now + self.ttl, user)
        return user


def _user_from_request(settings: Settings, recent: RecentUsers) -> accounts.User | None:
    """A bearer token or the signed session cookie, checked against the database."""
    header = request.headers.get("Authorization", "")
    engine = runtime().engine
    if header.startswith("Bearer "):
        g.via_token = True
        token = header[7:].strip()

        def load_token():
            with engine.begin() as conn:
                return accounts.user_for_token(conn, token)

        return recent.get("t:" + token_digest(token), load_token)
    uid = session.get("uid")
    if not isinstance(uid, int):
        return None

    def load_session():
        with engine.connect() as conn:
            return accounts.user_by_id(conn, uid)

    return recent.get(f"u:{uid}", load_session)


def _same_origin() -> bool:
    """State-changing browser requests must come from our own pages (CSRF defence)."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    return bool(source) and urlparse(source).netloc == request.host


def register(server: Flask, settings: Settings) -> None:
    """Install the guard, the security headers and the sign-in routes."""
    server.secret_key = secret_key(settings)
    recent = RecentUsers(settings.auth_cache_seconds)
    server.config.update(
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        MAX_CONTENT_LENGTH=settings.max_upload_mb * 1024 * 1024,
    )  # fmt: skip

    @server.before_request
    def _guard():
        if request.path.startswith(PUBLIC_PREFIXES):
            return None
        g.user = _user_from_request(settings, recent)
        if g.user is None:
            if request.path.startswith(("/api/", "/tiles/", "/_dash-")):
                return jsonify({"error": "请先登录", "status": 401}), 401
            return redirect("/login?" + urlencode({"next": request.full_path.rstrip("?")}))
        unsafe = request.method not in ("GET", "HEAD", "OPTIONS") and not g.get("via_token")
        if unsafe and not _same_origin():
            return jsonify({"error": "跨站请求被拒绝", "status": 403}), 403
        return None

    @server.after_request
    def _headers(resp):
        resp.headers.setdefault("Content-Security-Policy", content_security_policy(settings))
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        if not settings.frame_ancestors:
            resp.headers["X-Frame-Options"] = "DENY"
        return resp

    register_login_routes(server, settings)


def content_security_policy(settings: Settings) -> str:
    """CSP that Dash and plotly work under: our own origin plus inline/eval they need."""
    tiles = " https://*.tianditu.gov.cn https://tile.openstreetmap.org"
    frames = settings.frame_ancestors or "'none'"
    return ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:" + tiles + "; "
            "worker-src 'self' blob:; connect-src 'self'; font-src 'self' data:; "
            f"frame-ancestors {frames}; base-uri 'self'; form-action 'self'")  # fmt: skip


def _safe_next(target: str | None) -> str:
    """Only local paths are followed after sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def register_login_routes(server: Flask, settings: Settings) -> None:
    """GET/POST /login, POST /logout, GET /api/me."""

    def page(message: str = "", status: int = 200):
        session.setdefault("csrf", secrets.token_urlsafe(24))
        html = render_template_string(LOGIN_PAGE, title=settings.title, message=message,
                                      csrf=session["csrf"], next=_safe_next(request.values.get("next")))  # fmt: skip
        return html, status

    @server.get("/login")
    def login_form():
        return page()

    @server.post("/login")
    def login():
        if request.form.get("csrf_token") != session.get("csrf") or not _same_origin():
            return page("页面已过期，请重新登录", 400)
        username = request.form.get("username", "").strip()[:80]
        password = request.form.get("password", "")
        with runtime().engine.begin() as conn:
            if accounts.too_many_failures(conn, username, client_ip()):
                accounts.audit(conn, username, "login_throttled", ip=client_ip())
                return page("登录失败次数过多，请 15 分钟后再试", 429)
            user = accounts.authenticate(conn, username, password, client_ip())
            accounts.audit(conn, username, "login" if user else "login_failed", ip=client_ip())
        if user is None:
            return page("用户名或密码错误", 401)
        session.clear()
        session.permanent = True
        session["uid"] = user.id
        return redirect(_safe_next(request.form.get("next")))

    @server.get("/login/token")
    def login_with_token():
        """The big screen signs in from a URL holding its kiosk token (bound to that screen)."""
        token = request.args.get("t", "")
        with runtime().engine.begin() as conn:
            user = accounts.user_for_token(conn, token) if token else None
            if user is None or user.role.name != "kiosk":
                accounts.audit(conn, None, "login_failed", "kiosk-token", ip=client_ip())
                return page("大屏令牌无效或已吊销", 401)
            accounts.audit(conn, user.username, "login", "kiosk-token", ip=client_ip())
        session.clear()
        session.permanent = True
        session["uid"] = user.id
        return redirect("/")

    @server.route("/logout", methods=["GET", "POST"])
    def logout():
        session.clear()
        return redirect("/login")

    @server.get("/api/me")
    def me():
        user = current_user()
        return jsonify({"username": user.username, "role": user.role.name,
                        "role_title": user.role.title, "areas": list(user.areas)})  # fmt: skip

    @server.get("/api/admin/audit")
    def audit_log():
        if not current_user().role.admin:
            raise Forbidden("只有管理员可以查看审计日志")
        with runtime().engine.connect() as conn:
            return jsonify({"entries": accounts.audit_entries(conn)})
