"""The API's bearer token: made once per data dir, kept in an owner-only file.

A token file that holds fewer than MIN_TOKEN_CHARS characters is refused, not replaced:
the agent only ever writes a full token atomically, so a short or empty file is someone
else's doing (a hand-written token, a truncated copy) and silently swapping a credential
somebody chose would lock their clients out without a word. kube-apiserver likewise stops
on a bad token file rather than guessing.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gitops.errors import GitopsError
from gitops.private_files import PRIVATE_FILE, write_atomic

MIN_TOKEN_CHARS = 32
_TOKEN_BYTES = 32           # token_urlsafe: 43 characters


def check_token(text: str, where: str = "the token") -> str:
    """The token in `text` (surrounding whitespace is not part of it), or GitopsError."""
    token = text.strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise GitopsError(f"{where} holds {len(token)} character(s); a bearer token needs at "
                          f"least {MIN_TOKEN_CHARS}: put a longer one there, or delete the "
                          "file and a new one is made at start")
    return token


def load_or_create(path: Path) -> str:
    """The token in `path`, made first if there is none; the file is forced to 0600."""
    if not path.exists():
        write_atomic(path, secrets.token_urlsafe(_TOKEN_BYTES) + "\n")
    os.chmod(path, PRIVATE_FILE)        # an older version, or a hand-made file, may be 0644
    return check_token(path.read_text(), f"the token file {path}")
