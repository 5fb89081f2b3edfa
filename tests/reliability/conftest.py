"""Fixtures for the reliability tests: a git repository to commit manifests into."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import git


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.invalid")
    git(path, "config", "user.name", "test")
    return path
