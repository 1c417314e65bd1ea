"""One mapping from exceptions to HTTP answers: JSON with a Chinese message, never a traceback."""

from __future__ import annotations

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from errors import NotFound, OneMapError

HTTP_MESSAGES = {400: "请求无效", 404: "没有这个地址", 405: "不支持该请求方法", 413: "上传内容过大"}


def register(server: Flask) -> None:
    """Install the error handlers and the catch-all 404 for unknown API paths."""

    @server.errorhandler(OneMapError)
    def _onemap_error(exc: OneMapError):
        return jsonify({"error": exc.message, "status": exc.status}), exc.status

    @server.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        message = HTTP_MESSAGES.get(exc.code, exc.name)
        return jsonify({"error": message, "status": exc.code}), exc.code

    @server.errorhandler(Exception)
    def _unexpected(exc: Exception):
        server.logger.exception("unexpected error on %s", request.path)
        return jsonify({"error": "服务器内部错误，请联系管理员", "status": 500}), 500

    @server.get("/tiles/<path:rest>")
    @server.get("/api/<path:rest>")
    def _unknown(rest: str):
        raise NotFound("没有这个地址：瓦片为 /tiles/<图层>/<z>/<x>/<y>.pbf，接口见 /api/layers")
