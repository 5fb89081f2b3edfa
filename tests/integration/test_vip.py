"""Loopback VIPs with the real `ip` tool, as root (the fake-`ip` cases are pure:
tests/unit/test_vip.py)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess

import pytest

from gitops.proxy.vip import LoopbackVips, can_manage_addresses

TEST_CIDR = "10.255.250.0/24"
TEST_LABEL = "lo:gvtest"


def _lo_addrs() -> str:
    return subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.skipif(not (shutil.which("ip") and can_manage_addresses()),
                    reason="needs root (CAP_NET_ADMIN) and the ip tool")
def test_real_loopback_vips():
    v = LoopbackVips(cidr=TEST_CIDR, label=TEST_LABEL)
    wanted = {"10.255.250.7", "10.255.250.8"}
    v.remove_all()  # leftovers of a crashed run
    try:
        assert v.sync(wanted) == wanted
        listing = _lo_addrs()
        for ip in wanted:
            assert f"inet {ip}/32" in listing
        assert v.ours() == wanted

        # traffic only to an address this test created
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(socket.socket())
            server.bind(("10.255.250.7", 0))
            server.listen(1)
            port = server.getsockname()[1]
            client = stack.enter_context(
                socket.create_connection(("10.255.250.7", port), timeout=5))
            conn, _ = server.accept()
            stack.enter_context(conn)
            client.sendall(b"ping")
            assert conn.recv(4) == b"ping"

        assert v.sync({"10.255.250.8"}) == {"10.255.250.8"}
        assert "inet 10.255.250.7/32" not in _lo_addrs()
    finally:
        removed = v.remove_all()
    assert removed <= wanted
    listing = _lo_addrs()
    assert "10.255.250." not in listing
    assert "inet 127.0.0.1/8" in listing
