"""What admission refuses with: the API turns each into the Status a Kubernetes server
sends (422, 404, 403); git's sync into a refused revision naming file and line."""

from __future__ import annotations

from gitops.errors import PermanentError


class Refused(PermanentError):
    """An admission rule refused the write."""


class Invalid(Refused):
    """The object breaks a rule of its kind: one cause per field, (path, message), with
    Kubernetes' wording ("Invalid value: ...: field is immutable")."""

    def __init__(self, kind: str, name: str, causes: list[tuple[str, str]]) -> None:
        self.kind = kind
        self.name = name
        self.causes = causes
        text = "; ".join(f"{path}: {message}" if path else message for path, message in causes)
        super().__init__(f'{kind} "{name}" is invalid: {text}')


class NamespaceNotFound(Refused):
    """An object created in a namespace that does not exist."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        super().__init__(f'namespaces "{namespace}" not found')


class NamespaceTerminating(Refused):
    """An object created in a namespace being deleted."""

    def __init__(self, namespace: str, kind: str, name: str) -> None:
        self.namespace = namespace
        super().__init__(f'unable to create new content in namespace {namespace} because '
                         f'it is being terminated')
