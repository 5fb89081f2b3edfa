"""Webhook verification and push parsing (pure): GitHub, Gitea, GitLab, generic HMAC; the
bounded memory of recent delivery ids that recognises a replay."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from gitops.errors import GitopsError

PROVIDERS = ("github", "gitea", "gitlab", "generic")

# Where each provider puts the repository's URLs (GitHub/Gitea `repository`, GitLab both).
_URL_KEYS = {"repository": ("clone_url", "html_url", "ssh_url", "git_url", "url", "homepage",
                            "git_http_url", "git_ssh_url"),
             "project": ("git_http_url", "git_ssh_url", "web_url", "http_url", "ssh_url")}


def load_secret(file: str | None = None, env: str | None = None) -> bytes | None:
    """The shared secret, from a file or an environment variable (never from argv)."""
    if file and env:
        raise GitopsError("give the webhook secret as a file or an environment variable, "
                          "not both")
    if file:
        try:
            value = Path(file).read_bytes().rstrip(b"\r\n")   # `echo s > f` adds a newline
        except OSError as exc:
            raise GitopsError(f"webhook secret file {file}: {exc.strerror or exc}") from exc
        if not value.strip():
            raise GitopsError(f"webhook secret file {file} is empty")
        return value
    if env:
        value = os.fsencode(os.environ.get(env, "")).rstrip(b"\r\n")
        if not value.strip():
            raise GitopsError(f"webhook secret variable {env} is unset or empty")
        return value
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


def _b(text: str) -> bytes:
    # aiohttp decodes odd header bytes as surrogates; they must compare unequal, not crash.
    return text.encode("utf-8", "surrogateescape")


def _hmac_ok(secret: bytes, body: bytes, given: str, prefix: str = "sha256=") -> bool:
    if not given.startswith(prefix):
        return False
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest.encode(), _b(given[len(prefix):].strip().lower()))


def verify(provider: str, headers: Mapping[str, str], body: bytes, secret: bytes) -> bool:
    """Does the request carry a valid signature (or token) for `secret`?"""
    if not secret:
        return False                    # an empty HMAC key would let anyone sign
    if provider in ("github", "gitea"):
        sigs = [(_header(headers, "X-Hub-Signature-256"), "sha256=")]
        if provider == "gitea":
            sigs.append((_header(headers, "X-Gitea-Signature"), ""))
        return any(_hmac_ok(secret, body, sig, prefix) for sig, prefix in sigs if sig)
    if provider == "gitlab":
        token = _header(headers, "X-Gitlab-Token")
        return bool(token) and hmac.compare_digest(_b(token), secret)
    if provider == "generic":
        return _hmac_ok(secret, body, _header(headers, "X-Signature-256"))
    return False


_HEX_SHA256 = re.compile(r"\s*(sha256=)?[0-9a-fA-F]{64}\s*")


def may_verify(provider: str, headers: Mapping[str, str], secret: bytes) -> bool:
    """Could this request verify, judged from its headers alone (before the body is read)?
    The signature header must be there and shaped like one; GitLab's token does not depend
    on the body, so it is checked in full."""
    def signed(name: str, prefixed: bool = True) -> bool:
        m = _HEX_SHA256.fullmatch(_header(headers, name))
        return bool(m) and bool(m.group(1)) == prefixed

    if provider == "github":
        return signed("X-Hub-Signature-256")
    if provider == "gitea":
        return signed("X-Hub-Signature-256") or signed("X-Gitea-Signature", prefixed=False)
    if provider == "gitlab":
        return verify(provider, headers, b"", secret)
    if provider == "generic":
        return signed("X-Signature-256")
    return False


# Each provider's id of one event, the same when it is delivered again (GitHub's and Gitea's
# "Redeliver", GitLab's retries: its Idempotency-Key; X-Gitlab-Webhook-UUID is per attempt).
_DELIVERY_HEADERS = {
    "github": ("X-GitHub-Delivery",),
    "gitea": ("X-Gitea-Delivery", "X-Gogs-Delivery", "X-GitHub-Delivery"),
    "gitlab": ("Idempotency-Key", "X-Gitlab-Event-UUID"),
    "generic": ("X-Request-Id",),
}


def delivery_id(provider: str, headers: Mapping[str, str]) -> str:
    """The provider's delivery id, or "" when the request carries none."""
    return next((v.strip() for h in _DELIVERY_HEADERS.get(provider, ())
                 if (v := _header(headers, h)).strip()), "")


class DeliveryLog:
    """Delivery ids seen in the last `window` seconds, at most `capacity` of them (the
    oldest forgotten first): a replayed delivery is recognised, and memory stays bounded.
    Only verified deliveries may be recorded, so unsigned junk can neither fill it nor
    make a genuine delivery look like a replay."""

    def __init__(self, window: float = 3600.0, capacity: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self.capacity, self.clock = window, capacity, clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()    # key -> expiry, oldest first

    @staticmethod
    def _key(provider: str, delivery: str) -> bytes:
        # A fixed-size key: a long header costs no more memory than a UUID.
        return hashlib.sha256(_b(f"{provider}\0{delivery}")).digest()

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, provider: str, delivery: str) -> bool:
        """True, and remembered, if this delivery was not seen within the window."""
        now = self.clock()
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        key = self._key(provider, delivery)
        if key in self._seen:
            return False
        self._seen[key] = now + self.window
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def forget(self, provider: str, delivery: str) -> None:
        """A delivery we could not act on: its redelivery must be accepted."""
        self._seen.pop(self._key(provider, delivery), None)


def _payload(headers: Mapping[str, str], body: bytes) -> dict:
    """The JSON document, also when sent form-encoded (GitHub's `payload=` content type)."""
    text = body.decode("utf-8", "replace").strip()
    if ("form-urlencoded" in _header(headers, "Content-Type").lower()
            or text.startswith("payload=")):
        text = (parse_qs(text).get("payload") or [""])[0]
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def parse_push(provider: str, headers: Mapping[str, str], body: bytes) -> PushEvent | None:
    """The push this request announces, or None for other events (ping, issues...)."""
    if provider in ("github", "gitea"):
        event = (_header(headers, "X-GitHub-Event") or _header(headers, "X-Gitea-Event")
                 or _header(headers, "X-Gogs-Event"))
        if event and event != "push":
            return None
    if provider == "gitlab" and _header(headers, "X-Gitlab-Event") not in (
            "Push Hook", "Tag Push Hook"):
        return None
    data = _payload(headers, body)
    urls: list[str] = []
    for section, keys in _URL_KEYS.items():
        obj = data.get(section)
        if isinstance(obj, dict):
            urls += [u for u in (obj.get(k) for k in keys) if isinstance(u, str) and u]
    ref, after = data.get("ref"), data.get("after") or data.get("checkout_sha")
    return PushEvent(provider, ref if isinstance(ref, str) else None,
                     after if isinstance(after, str) else None, tuple(dict.fromkeys(urls)))


def normalize_url(url: str) -> str:
    """`git@host:o/r.git`, `https://user@Host/o/r/` and `ssh://git@host:22/o/r` all match.

    The whole URL is compared case-insensitively: a false match costs one extra sync,
    a missed one (GitHub reports `Owner/Repo` as spelled on GitHub) waits for the poll.
    """
    url = url.strip()
    if m := re.match(r"^(?:[^@/:]+@)?([^@/:]+):(?!//)(.+)$", url):   # scp-like ssh syntax
        host, path = m.group(1), m.group(2)
    else:
        url = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url, flags=re.IGNORECASE)
        authority, _, path = url.partition("/")
        host = re.sub(r":\d*$", "", authority.rpartition("@")[2])   # drop user and port
    path = path.strip("/").removesuffix(".git").strip("/")
    return f"{host}/{path}".lower()


def concerns(event: PushEvent, repo_url: str, ref: str) -> bool:
    """Is this push for our repository and the ref we follow?"""
    if event.repo_urls and normalize_url(repo_url) not in {normalize_url(u)
                                                          for u in event.repo_urls}:
        return False
    if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", ref or "", flags=re.IGNORECASE):
        return False                    # pinned to a commit: a push cannot move it
    if not event.ref:
        return True                     # payload without a ref: let the sync decide
    if not ref:
        return event.ref.startswith("refs/heads/")   # default branch: any branch push
    return event.ref in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}")
