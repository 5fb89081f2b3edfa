"""Who holds which pod address during a node pass (pure: plan.held_ips, PinnedPodIps)."""

from __future__ import annotations

import pytest

from gitops.agent import plan as P
from gitops.agent.runtime import CONTAINER, POD_IP, POD_UID, ContainerInfo
from gitops.model.addresses import PinnedPodIps

NET = "10.0.0.0/24"


def ctr(state: str, ip: str = "", pinned: str = "") -> ContainerInfo:
    labels = {POD_UID: "u1", CONTAINER: "app", **({POD_IP: pinned} if pinned else {})}
    return ContainerInfo("c1", "n", labels, state, ip=ip)


def pod(phase: str = "Running", pod_ip: str = "") -> dict:
    return {"metadata": {"uid": "u1"}, "spec": {},
            "status": {"phase": phase, **({"podIP": pod_ip} if pod_ip else {})}}


@pytest.mark.parametrize("phase, containers, held", [
    ("Running", [ctr("running", "10.0.0.128", "10.0.0.128")], ["10.0.0.128", "10.0.0.128"]),
    ("Running", [ctr("exited", "", "10.0.0.129")], ["10.0.0.129"]),     # may run again
    ("Succeeded", [ctr("exited", "", "10.0.0.129")], []),                # free again
    ("Failed", [ctr("running", "10.0.0.5")], ["10.0.0.5"]),              # a holder holds
    ("Running", [ctr("running")], []),
])
def test_held_ips(phase, containers, held):
    assert P.held_ips(pod(phase), containers) == held


@pytest.mark.parametrize("pod_ip, containers, previous", [
    ("", [], ""),
    ("10.0.0.140", [], "10.0.0.140"),
    ("10.0.0.140", [ctr("exited", "", "10.0.0.129")], "10.0.0.129"),   # the pinned one
])
def test_previous_ip(pod_ip, containers, previous):
    assert P.previous_ip(pod(pod_ip=pod_ip), containers) == previous


def test_a_pod_keeps_its_address_and_nobody_shares_one():
    ips = PinnedPodIps()
    ips.reset([("10.0.0.128", "a"), ("10.0.0.129", "b")])
    assert ips.pin(NET, "a", "10.0.0.128") == "10.0.0.128"       # its own
    assert ips.pin(NET, "c", "10.0.0.129") == "10.0.0.130"       # b's: not given away
    assert ips.pin(NET, "d", "") == "10.0.0.131"                 # c's is held now
    ips.reset([])
    assert ips.pin(NET, "d", "") == "10.0.0.128"                 # a new pass, all free


def test_no_address_when_the_upper_half_is_full():
    ips = PinnedPodIps()
    ips.reset((f"10.0.0.{i}", f"p{i}") for i in range(128, 255))
    assert ips.pin(NET, "new", "") == ""
