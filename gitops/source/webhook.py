"""Webhook verification and push parsing (pure): GitHub, Gitea, GitLab, generic HMAC."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from gitops.errors import GitopsError

PROVIDERS = ("github", "gitea", "gitlab", "generic")


def load_secret(file: str | None = None, env: str | None = None) -> bytes | None:
    """The shared secret, from a file or an environment variable (never from argv)."""
    if file:
        try:
            value = open(file, "rb").read().strip()
        except OSError as exc:
            raise GitopsError(f"webhook secret file {file}: {exc.strerror}") from exc
        if not value:
            raise GitopsError(f"webhook secret file {file} is empty")
        return value
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise GitopsError(f"webhook secret variable {env} is unset or empty")
        return value.encode()
    return None


@dataclass(frozen=True)
class PushEvent:
    provider: str
    ref: str | None
    after: str | None
    repo_urls: tuple[str, ...]


def _header(headers: Mapping[str, str], name: str) -> str:
    low = name.lower()
    return next((v for k, v in headers.items() if k.lower() == low), "")


def _hmac_ok(secret: bytes, body: bytes, given: str, prefix: str = "sha256=") -> bool:
    if prefix and not given.startswith(prefix):
        return False
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest.encode(), given[len(prefix):].strip().lower().encode())


def verify(provider: str, headers: Mapping[str, str], body: bytes, secret: bytes) -> bool:
    if provider in ("github", "gitea"):
        if sig := _header(headers, "X-Hub-Signature-256"):
            return _hmac_ok(secret, body, sig)
        if provider == "gitea" and (sig := _header(headers, "X-Gitea-Signature")):
            return _hmac_ok(secret, body, sig, prefix="")
        return False
    if provider == "gitlab":
        token = _header(headers, "X-Gitlab-Token")
        return bool(token) and hmac.compare_digest(token.encode(), secret)
    if provider == "generic":
        return _hmac_ok(secret, body, _header(headers, "X-Signature-256"))
    return False


def parse_push(provider: str, headers: Mapping[str, str], body: bytes) -> PushEvent | None:
    """The push this request announces, or None for other events (ping, issues...)."""
    if provider in ("github", "gitea"):
        event = _header(headers, "X-GitHub-Event") or _header(headers, "X-Gitea-Event")
        if event and event != "push":
            return None
    if provider == "gitlab" and _header(headers, "X-Gitlab-Event") not in (
            "Push Hook", "Tag Push Hook"):
        return None
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    repo = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
    project = payload.get("project") if isinstance(payload.get("project"), dict) else {}
    urls = tuple(u for u in (repo.get(k) for k in (
        "clone_url", "html_url", "ssh_url", "git_url", "url", "git_http_url", "git_ssh_url"))
        if isinstance(u, str)) + tuple(u for u in (project.get(k) for k in (
            "git_http_url", "git_ssh_url", "web_url")) if isinstance(u, str))
    ref, after = payload.get("ref"), payload.get("after") or payload.get("checkout_sha")
    return PushEvent(provider, ref if isinstance(ref, str) else None,
                     after if isinstance(after, str) else None, urls)


def normalize_url(url: str) -> str:
    """`git@host:o/r.git`, `https://user@Host/o/r/` and `ssh://git@host/o/r` all match."""
    url = url.strip()
    if m := re.match(r"^[\w.-]+@([^:/]+):(.+)$", url):   # scp-like ssh syntax
        host, path = m.group(1), m.group(2)
    else:
        url = re.sub(r"^[a-z+]+://", "", url)
        url = url.split("@", 1)[-1]
        host, _, path = url.partition("/")
        host = host.split(":")[0]
    path = path.strip("/").removesuffix(".git")
    return f"{host.lower()}/{path}"


def concerns(event: PushEvent, repo_url: str, ref: str) -> bool:
    """Is this push for our repository and the ref we follow?"""
    if event.repo_urls and normalize_url(repo_url) not in {normalize_url(u)
                                                          for u in event.repo_urls}:
        return False
    if re.fullmatch(r"[0-9a-f]{40}", ref or ""):
        return False                    # pinned to a commit: a push cannot move it
    if not ref or not event.ref:
        return True
    return event.ref in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}")
