"""One mapping from exceptions to HTTP answers: JSON with a Chinese message, never a traceback.

A database outage answers 503 with `Retry-After` (JSON for data requests, a small page of its own
for pages) and is logged once when it starts and once when it ends, not as a traceback per request.
"""

from __future__ import annotations

import threading
from datetime import datetime

import psycopg.errors
from dash.exceptions import DependencyException
from flask import Flask, Response, jsonify, render_template_string, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from errors import NotFound, OneMapError

HTTP_MESSAGES = {400: "请求无效", 404: "没有这个地址", 405: "不支持该请求方法", 413: "上传内容过大"}
RETRY_AFTER_S = 10
MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError)
DB_DOWN = "数据库暂不可用，请稍后再试"
TIMED_OUT = "查询超时：请缩小范围或减少筛选条件后重试"
OUTAGE_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{{ retry }}"><title>数据库暂不可用</title>
<link rel="stylesheet" href="/assets/style.css"></head>
<body class="login-body"><div class="login-form outage" id="outage">
<h1>数据库暂不可用</h1><p>{{ since }} 起无法连接数据库。页面将每 {{ retry }} 秒自动重试，恢复后自动打开。</p>
</div></body></html>"""


class Outage:
    """When this worker last saw the database fail (None while it works)."""

    def __init__(self):
        self.since: datetime | None = None
        self.lock = threading.Lock()

    def failed(self, server: Flask, exc: Exception) -> datetime:
        """Note a failure; log only the first of an outage."""
        with self.lock:
            if self.since is None:
                self.since = datetime.now().astimezone()
                server.logger.error("database unavailable since %s: %s", self.since.isoformat(
                    timespec="seconds"), str(getattr(exc, "orig", exc)).splitlines()[0][:200])  # fmt: skip
            return self.since

    def recovered(self, server: Flask) -> None:
        """Note a success; log the end of an outage."""
        if self.since is not None:
            with self.lock:
                if self.since is not None:
                    server.logger.warning("database available again (down since %s)",
                                          self.since.isoformat(timespec="seconds"))  # fmt: skip
                    self.since = None


def is_outage(exc: Exception) -> bool:
    """A lost or refused database connection (not a query that failed on its own)."""
    if isinstance(exc, InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError) and not is_timeout(exc)


def is_timeout(exc: Exception) -> bool:
    """A statement cancelled by the statement timeout."""
    return isinstance(getattr(exc, "orig", None), psycopg.errors.QueryCanceled)


def wants_page() -> bool:
    """A browser asking for a page (not data, tiles or a Dash callback)."""
    data = request.path.startswith(("/api/", "/tiles/", "/_dash-", "/assets/"))
    return not data and "text/html" in request.headers.get("Accept", "")


def unavailable(message: str, since: datetime | None = None) -> Response:
    """503 with Retry-After: the outage page for browsers, JSON otherwise."""
    if since is not None and wants_page():
        html = render_template_string(OUTAGE_PAGE, retry=RETRY_AFTER_S,
                                      since=since.strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
        resp = Response(html, status=503, mimetype="text/html")
    else:
        resp = jsonify({"error": message, "status": 503})
        resp.status_code = 503
    resp.headers["Retry-After"] = str(RETRY_AFTER_S)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def register(server: Flask) -> None:
    """Install the error handlers and the catch-all 404 for unknown API paths."""
    outage = Outage()

    @server.errorhandler(OneMapError)
    def _onemap_error(exc: OneMapError):
        return jsonify({"error": exc.message, "status": exc.status}), exc.status

    @server.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        message = HTTP_MESSAGES.get(exc.code, exc.name)
        return jsonify({"error": message, "status": exc.code}), exc.code

    @server.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        if is_timeout(exc):
            return unavailable(TIMED_OUT)
        if is_outage(exc):
            return unavailable(DB_DOWN, outage.failed(server, exc))
        return _unexpected(exc)

    @server.errorhandler(DependencyException)
    def _unknown_asset(exc: DependencyException):
        return jsonify({"error": "没有这个文件", "status": 404}), 404

    @server.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if request.path.startswith("/_dash-") and isinstance(exc, MALFORMED):
            # Dash parses callback bodies itself; a malformed one is the caller's error, not ours.
            server.logger.warning("malformed Dash request on %s: %r", request.path, exc)
            return jsonify({"error": "回调请求格式无效", "status": 400}), 400
        server.logger.exception("unexpected error on %s", request.path)
        return jsonify({"error": "服务器内部错误，请联系管理员", "status": 500}), 500

    @server.after_request
    def _note_recovery(resp):
        if resp.status_code < 500:
            outage.recovered(server)
        return resp

    @server.get("/tiles/<path:rest>")
    @server.get("/api/<path:rest>")
    def _unknown(rest: str):
        raise NotFound("没有这个地址：瓦片为 /tiles/<图层>/<z>/<x>/<y>.pbf，接口见 /api/layers")
