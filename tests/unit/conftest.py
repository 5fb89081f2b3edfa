"""Unit tests are pure: no process, no socket, no Docker engine (those belong to
tests/integration, tests/docker and tests/e2e). Any attempt fails the test that made it."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest


class NotAUnitTest(AssertionError):
    pass


def _refuse(what: str):
    def refused(*args, **kwargs):
        raise NotAUnitTest(f"a unit test {what}: move it to tests/integration (or fake it)")
    return refused


@pytest.fixture(autouse=True)
def _pure(monkeypatch):
    # Popen._execute_child is what subprocess.run/call/check_output and Popen all reach.
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse("spawned a process"))
    for name in ("fork", "system", "posix_spawn", "posix_spawnp"):
        monkeypatch.setattr(os, name, _refuse("spawned a process"))
    # Listening, dialling (a Docker engine's socket too) and sending datagrams.
    for name in ("bind", "connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, _refuse("used a socket"))
    yield
