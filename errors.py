"""The project's exception hierarchy, each carrying its HTTP status and a Chinese message."""

from __future__ import annotations


class OneMapError(Exception):
    """Base of all errors a user may see; `status` is the HTTP answer."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Unauthorized(OneMapError):
    """Not signed in."""

    status = 401


class Forbidden(OneMapError):
    """Signed in, but this is not for the user's role or areas."""

    status = 403


class BadRequest(OneMapError):
    """A parameter is missing, malformed or not allowed."""

    status = 400


class NotFound(OneMapError):
    """The layer, area or object asked for does not exist."""

    status = 404


class ImportRejected(OneMapError):
    """An import was refused; nothing was written."""

    status = 422
