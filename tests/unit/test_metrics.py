"""/metrics helpers that need no server: credentials out of source URLs. The exposition
served by the aiohttp route is tested in tests/integration/test_metrics.py."""

from __future__ import annotations

from gitops.api import metrics


def test_source_urls_lose_their_credentials():
    assert metrics.redact("https://user:tok3n@git.example.com/a/b.git") == \
        "https://git.example.com/a/b.git"
    assert metrics.redact("ssh://git@git.example.com/a/b.git") == "ssh://git.example.com/a/b.git"
    assert metrics.redact("/srv/repo") == "/srv/repo"
