"""One error hierarchy for the whole agent (see DESIGN.md, principle 3).

Every exception the agent defines derives from GitopsError (tests/unit/test_errors.py
checks it), so the CLI tells a refusal (one line) from a bug (one line and a hint to the
traceback). Subclasses live next to the code that raises them."""

from __future__ import annotations


class GitopsError(Exception):
    """Base of every error the agent raises on purpose."""


class ManifestError(GitopsError):
    """A problem in a manifest, located as precisely as we can: file, line, field path."""

    def __init__(self, message: str, file: str = "", line: int = 0, path: str = "",
                 kind: str = "", name: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.path = path
        self.kind = kind
        self.name = name

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file else "<input>"
        obj = f"{self.kind}/{self.name}" if self.kind or self.name else "-"
        field = self.path or "-"
        return f"{where}: {obj}: {field}: {self.message}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "kind": self.kind, "name": self.name,
                "path": self.path, "message": self.message}


class TransientError(GitopsError):
    """Worth retrying later (engine busy, network blip)."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(GitopsError):
    """Retrying the same input will not help; surface it in status and logs."""
