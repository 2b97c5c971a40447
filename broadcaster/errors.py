"""The one error type of the API; the error middleware renders it in the spec's shape."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, details: list[int] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        # The hosted API's APIError.details: error-specific integers, usually none.
        self.details = list(details or [])


def bad_request(message: str) -> ApiError:
    return ApiError(400, 4, message)


def not_found(what: str) -> ApiError:
    return ApiError(404, 16, f"{what} does not exist")


def conflict(message: str) -> ApiError:
    return ApiError(409, 4, message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, 17, message)


def unauthorized(code: int, message: str) -> ApiError:
    return ApiError(401, code, message)


def too_large(limit: int) -> ApiError:
    return ApiError(413, 22, f"request body is larger than the maximum of {limit} bytes")


def rate_limited(operation: str) -> ApiError:
    return ApiError(429, 9, f"too many requests for {operation}, check the X-RateLimit-* headers")


# Code 80 (no Stream code means "a dependency is down"; -1 stays for our bugs): the request
# may succeed if retried after Retry-After seconds.
UNAVAILABLE_CODE = 80


def unavailable(what: str) -> ApiError:
    return ApiError(503, UNAVAILABLE_CODE, f"{what} is unreachable; retry shortly")
