"""The `gitops` command (gitops.cli.app) and its views: tables and trees (output),
`describe` and `events` (describe), `--wait` (progress), why an object is unhealthy
(diagnose), and the client of the agent's API (client)."""

from gitops.cli.app import main

__all__ = ["main"]
