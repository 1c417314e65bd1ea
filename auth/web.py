"""Sign-in on the Flask server: sessions, bearer tokens, the request guard, CSRF, headers."""

from __future__ import annotations

import re
import secrets
import threading
import time
import unicodedata
from datetime import timedelta
from urllib.parse import unquote, urlencode, urlsplit

from flask import (
    Flask,
    g,
    has_request_context,
    jsonify,
    redirect,
    render_template_string,
    request,
    session,
)
from werkzeug.middleware.proxy_fix import ProxyFix

from auth import accounts
from auth.passwords import dummy_hash, token_digest
from errors import Forbidden, Unauthorized
from runtime import runtime
from settings import PROJECT_ROOT, Settings

# Reachable without signing in: these exact paths, and static files under these prefixes.
PUBLIC_PATHS = frozenset({"/login", "/login/token", "/logout", "/_favicon.ico"})
PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/")
DATA_PREFIXES = ("/api/", "/tiles/", "/_dash-")
SECRET_FILE = PROJECT_ROOT / "var" / "secret_key"
THROTTLED = "登录失败次数过多，请 15 分钟后再试"
BUSY = "该账号登录尝试过于频繁，请稍后再试"
EXPIRED = "页面已过期，请重新登录"
CROSS_SITE = "跨站请求被拒绝"
TOKEN_IN_QUERY = "大屏令牌不能放在 ?t= 中（会写入访问日志），请改用 /login/token#t=<令牌>"
TOKEN_PARAM = re.compile(r"(^|&)t=[^&]*")
# Sign-ins sleeping out an account's delay at once, per worker: beyond it they are refused (429),
# so a burst of attempts cannot park every server thread.
DELAY_SLOTS = 2
PAGE_HEAD = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ heading }} · {{ title }}</title>
<link rel="stylesheet" href="/assets/style.css">"""
LOGIN_PAGE = (
    PAGE_HEAD
    + """</head>
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
)
# The big screen opens /login/token#t=<token>: the fragment never leaves the browser, and
# assets/kiosk_login.js posts it from this form.
KIOSK_PAGE = (
    PAGE_HEAD
    + """<script src="/assets/kiosk_login.js" defer></script></head>
<body class="login-body"><form class="login-form" id="kiosk-login" method="post" action="/login/token">
<h1>{{ title }}</h1>
<p class="error" id="login-error"{% if not message %} hidden{% endif %}>{{ message }}</p>
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="t" id="kiosk-token">
<p class="hint">大屏地址：<code>/login/token#t=&lt;大屏令牌&gt;</code>（# 之后的令牌不会发送到服务器日志）。</p>
</form></body></html>"""
)
LOGOUT_PAGE = (
    PAGE_HEAD
    + """</head>
<body class="login-body"><form class="login-form" method="post" action="/logout">
<h1>{{ title }}</h1>
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<button type="submit" id="logout-submit">退出登录</button>
</form></body></html>"""
)


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
    """The caller's address: the peer, or X-Forwarded-For behind ONEMAP_TRUSTED_PROXIES."""
    return request.remote_addr or "?"


def csrf_token() -> str:
    """This session's CSRF token for forms (created on first use; empty outside a request)."""
    if not has_request_context():
        return ""
    return session.setdefault("csrf", secrets.token_urlsafe(24))


def _csrf_ok() -> bool:
    """The form carries the session's CSRF token (both present and equal)."""
    expected, given = session.get("csrf"), request.form.get("csrf_token", "")
    return (isinstance(expected, str) and bool(expected)
            and secrets.compare_digest(given.encode(), expected.encode()))  # fmt: skip


def _wants_json() -> bool:
    """An API client (JSON body or Accept preferring JSON) rather than a browser page."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return request.is_json or best == "application/json"


class RecentUsers:
    """Users looked up in the last few seconds, per worker: a map view fires dozens of tile
    requests at once, and each would otherwise cost a database round trip. A disabled user or a
    revoked token stops working within `ttl` seconds (at once on the worker that revoked it)."""

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

    def forget(self, key: str) -> None:
        """Drop a cached lookup (the next request loads it again)."""
        with self.lock:
            self.items.pop(key, None)


def _session_user(settings: Settings, recent: RecentUsers) -> accounts.User | None:
    """The user of a valid session cookie: signed in within the absolute lifetime, at the
    user's current session generation, and still active."""
    uid, gen, at = session.get("uid"), session.get("gen"), session.get("at")
    if not all(isinstance(v, int) for v in (uid, gen, at)):
        return None
    if time.time() - at > settings.session_absolute_hours * 3600:
        return None

    def load():
        with runtime().engine.connect() as conn:
            return accounts.user_by_id(conn, uid)

    key = f"u:{uid}"
    user = recent.get(key, load)
    if user is None or user.generation < gen:  # perhaps signed in after this worker looked it up
        recent.forget(key)
        user = recent.get(key, load)
    return user if user is not None and user.generation == gen else None


def _user_from_request(settings: Settings, recent: RecentUsers) -> accounts.User | None:
    """A bearer token or the signed session cookie, checked against the database."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        g.via_token = True
        token = header[7:].strip()

        def load_token():
            with runtime().engine.begin() as conn:
                return accounts.user_for_token(conn, token)

        return recent.get("t:" + token_digest(token), load_token)
    user = _session_user(settings, recent)
    if user is None and "uid" in session:
        session.clear()  # expired or revoked: drop the cookie
    return user


def _start_session(user: accounts.User) -> None:
    """A fresh session for a user who just signed in (new CSRF token, sign-in time, generation)."""
    session.clear()
    session.permanent = True
    session.update(uid=user.id, gen=user.generation, at=int(time.time()),
                   csrf=secrets.token_urlsafe(24))  # fmt: skip


def _same_origin(settings: Settings) -> bool:
    """State-changing browser requests must come from our own pages (CSRF defence): Origin or
    Referer is ONEMAP_PUBLIC_ORIGIN when set, else the host the request was sent to."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return False
    parts = urlsplit(source)
    if settings.public_origin:
        return f"{parts.scheme}://{parts.netloc}".lower() == settings.public_origin.lower()
    return parts.netloc == request.host


def _redact_query_tokens(app):
    """WSGI wrapper blanking a kiosk token sent as /login/token?t= before anything sees it:
    gunicorn writes its access log from this same environ."""

    def wrapped(environ, start_response):
        query = environ.get("QUERY_STRING", "")
        if environ.get("PATH_INFO", "").rstrip("/") == "/login/token" and "t=" in query:
            query = TOKEN_PARAM.sub(r"\1t=[redacted]", query)
            environ["QUERY_STRING"] = query
            for key in ("RAW_URI", "REQUEST_URI"):
                if key in environ:
                    environ[key] = environ[key].split("?", 1)[0] + "?" + query
        return app(environ, start_response)

    return wrapped


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
    if settings.trusted_proxies:
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=settings.trusted_proxies)
    server.wsgi_app = _redact_query_tokens(server.wsgi_app)
    dummy_hash()  # computed once before gunicorn forks the workers

    @server.before_request
    def _guard():
        if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES):
            return None
        g.user = _user_from_request(settings, recent)
        if g.user is None:
            if request.path.startswith(DATA_PREFIXES):
                return jsonify({"error": "请先登录", "status": 401}), 401
            return redirect("/login?" + urlencode({"next": request.full_path.rstrip("?")}))
        unsafe = request.method not in ("GET", "HEAD", "OPTIONS") and not g.get("via_token")
        if unsafe and not _same_origin(settings):
            return jsonify({"error": CROSS_SITE, "status": 403}), 403
        return None

    @server.after_request
    def _headers(resp):
        resp.headers.setdefault("Content-Security-Policy", content_security_policy(settings))
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        if not settings.frame_ancestors:
            resp.headers["X-Frame-Options"] = "DENY"
        return resp

    register_login_routes(server, settings, recent)


def content_security_policy(settings: Settings) -> str:
    """CSP that Dash and plotly work under: our own origin plus inline/eval they need."""
    tiles = " https://*.tianditu.gov.cn https://tile.openstreetmap.org"
    frames = settings.frame_ancestors or "'none'"
    return ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:" + tiles + "; "
            "worker-src 'self' blob:; connect-src 'self'; font-src 'self' data:; "
            f"frame-ancestors {frames}; base-uri 'self'; form-action 'self'")  # fmt: skip


def _unsafe_char(c: str) -> bool:
    """Whitespace, control or format characters (browsers drop some of them from URLs)."""
    return c.isspace() or unicodedata.category(c).startswith("C")


def _safe_next(target: str | None) -> str:
    """Only local paths are followed after sign-in (no open redirect): a single leading slash,
    and no whitespace, control characters or backslashes, raw or percent-encoded."""
    if not target or not target.startswith("/") or any(_unsafe_char(c) for c in target):
        return "/"
    path = target.split("?", 1)[0].split("#", 1)[0]
    for _ in range(3):  # %252F -> %2F -> /
        path = unquote(path)
    if path.startswith("//") or "\\" in path or any(_unsafe_char(c) for c in path):
        return "/"
    return target


def register_login_routes(server: Flask, settings: Settings, recent: RecentUsers) -> None:
    """GET/POST /login, GET/POST /login/token, GET/POST /logout, GET /api/me."""
    delay_slots = threading.BoundedSemaphore(DELAY_SLOTS)

    def page(template: str, heading: str, message: str = "", status: int = 200, **values):
        if message and status >= 400 and _wants_json():
            return jsonify({"error": message, "status": status}), status
        html = render_template_string(template, title=settings.title, heading=heading,
                                      message=message, csrf=csrf_token(), **values)  # fmt: skip
        return html, status

    def login_page(message: str = "", status: int = 200):
        nxt = _safe_next(request.values.get("next"))
        return page(LOGIN_PAGE, "登录", message, status, next=nxt)

    def kiosk_page(message: str = "", status: int = 200):
        return page(KIOSK_PAGE, "大屏登录", message, status)

    @server.get("/login")
    def login_form():
        return login_page()

    @server.post("/login")
    def login():
        if not _csrf_ok() or not _same_origin(settings):
            return login_page(EXPIRED, 400)
        username = request.form.get("username", "").strip()[:80]
        password = request.form.get("password", "")
        if "\x00" in username or "\x00" in password:  # PostgreSQL text cannot hold NUL
            return login_page("用户名或密码含有不允许的字符", 400)
        engine, ip = runtime().engine, client_ip()
        with engine.connect() as conn:
            refused, delay = accounts.sign_in_throttle(conn, username, ip)
        busy = not refused and delay > 0 and not delay_slots.acquire(blocking=False)
        if refused or busy:
            with engine.begin() as conn:
                accounts.audit(conn, username, "login_throttled", ip=ip)
            return login_page(BUSY if busy else THROTTLED, 429)
        if delay:  # the account has failed from elsewhere: slow down, but do not lock it
            try:
                time.sleep(delay)
            finally:
                delay_slots.release()
        with engine.begin() as conn:
            user = accounts.authenticate(conn, username, password, ip)
            accounts.audit(conn, username, "login" if user else "login_failed", ip=ip)
        if user is None:
            return login_page("用户名或密码错误", 401)
        _start_session(user)
        return redirect(_safe_next(request.form.get("next")))

    @server.get("/login/token")
    def kiosk_form():
        """The big screen's page: its script posts the token from the URL fragment (#t=)."""
        if "t" in request.args:  # the token would be in every access log on the way
            return kiosk_page(TOKEN_IN_QUERY, 400)
        return kiosk_page()

    @server.post("/login/token")
    def login_with_token():
        """The big screen signs in with its kiosk token (bound to that screen)."""
        if not _csrf_ok() or not _same_origin(settings):
            return kiosk_page("页面已过期，请重新打开大屏地址", 400)
        token = request.form.get("t", "").strip()
        with runtime().engine.begin() as conn:
            user = accounts.user_for_token(conn, token) if token else None
            if user is None or user.role.name != "kiosk":
                accounts.audit(conn, None, "login_failed", "kiosk-token", ip=client_ip())
                return kiosk_page("大屏令牌无效或已吊销", 401)
            accounts.audit(conn, user.username, "login", "kiosk-token", ip=client_ip())
        _start_session(user)
        return redirect("/bigscreen")  # the wall display (指挥中心大屏)

    @server.get("/logout")
    def logout_form():
        """A page with the sign-out button: signing out changes state, so it takes a POST."""
        if _session_user(settings, recent) is None:
            return redirect("/login")
        return page(LOGOUT_PAGE, "退出登录")

    @server.post("/logout")
    def logout():
        """End this user's sessions everywhere (a copied cookie dies with them)."""
        user = _session_user(settings, recent)
        if user is not None:
            if not _csrf_ok() or not _same_origin(settings):
                return jsonify({"error": CROSS_SITE, "status": 403}), 403
            with runtime().engine.begin() as conn:
                accounts.end_sessions(conn, user.id)
                accounts.audit(conn, user.username, "logout", ip=client_ip())
            recent.forget(f"u:{user.id}")
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
