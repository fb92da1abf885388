"""Errors a request can meet, each carrying the HTTP status it maps to (one mapping, in the handler)."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered to the client as ``{"error": message}`` with ``status``."""

    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class ModelFault(ApiError):
    """The model or the runtime failed on a valid request: a server-side fault, counted as a model error."""

    status = 500


class NonFiniteOutput(ModelFault):
    """The model produced NaN or Inf: the sign of a broken model, never passed on to clients as an answer."""


class ModelUnavailable(ApiError):
    """No model is being served (bad configuration, missing or tampered artifact, unreadable model)."""

    status = 503
