"""Kubernetes `Status` objects: every API error is one, with the code and reason kubectl expects."""

from __future__ import annotations

import json

from aiohttp import web

from gitops.admission.errors import Invalid, NamespaceNotFound, NamespaceTerminating, Refused
from gitops.errors import GitopsError


class ApiError(GitopsError):
    """An answer of the API other than success: its HTTP code says whether to retry."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict:
        return status_object(self.code, self.reason, self.message, self.details)

    def response(self) -> web.Response:
        return web.Response(text=json.dumps(self.status()), status=self.code,
                            content_type="application/json")


def status_object(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code}
    if details:
        out["details"] = details
    return out


def success(details: dict | None = None) -> dict:
    out: dict = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        out["details"] = details
    return out


def qualified(plural: str, group: str) -> str:
    """How Kubernetes names a resource in messages: `deployments.apps`, `pods`."""
    return f"{plural}.{group}" if group else plural


def _details(plural: str, group: str, name: str, **extra) -> dict:
    return {"name": name, **({"group": group} if group else {}), "kind": plural, **extra}


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(plural, group)} "{name}" not found',
                    _details(plural, group, name))


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified(plural, group)} "{name}" already exists',
                    _details(plural, group, name))


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on '
                    f'{qualified(plural, group)} "{name}": {why}', _details(plural, group, name))


def stale(plural: str, group: str, name: str) -> ApiError:
    return conflict(plural, group, name, "the object has been modified; please apply your "
                    "changes to the latest version and try again")


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 with one cause per field: (field path, message)."""
    text = "; ".join(f"{f}: {m}" if f else m for f, m in causes)
    return ApiError(422, "Invalid", f'{qualified(kind, group)} "{name}" is invalid: {text}',
                    {"name": name, **({"group": group} if group else {}), "kind": kind,
                     "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f}
                                for f, m in causes]})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def method_not_allowed(message: str = "the server does not allow this method on the "
                       "requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def refused(exc: Refused, kind: str, group: str) -> ApiError:
    """What admission refused, as the API server answers it."""
    if isinstance(exc, Invalid):
        return invalid(kind, group, exc.name, exc.causes)
    if isinstance(exc, NamespaceNotFound):
        return not_found("namespaces", "", exc.namespace)
    if isinstance(exc, NamespaceTerminating):
        return ApiError(403, "Forbidden", str(exc), {"name": exc.namespace,
                                                     "kind": "namespaces"})
    return ApiError(422, "Invalid", str(exc))
