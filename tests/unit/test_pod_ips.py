"""Pod IPs pinned from the upper half of the pod network (pure)."""

import pytest

from gitops.model.addresses import choose_pod_ip, dynamic_range

NET = "10.213.7.0/24"


def test_docker_allocates_only_from_the_lower_half():
    assert dynamic_range(NET) == "10.213.7.0/25"


@pytest.mark.parametrize("previous, taken, chosen", [
    ("", [], "10.213.7.128"),                                  # lowest of the upper half
    ("", ["10.213.7.128", "10.213.7.129"], "10.213.7.130"),
    ("10.213.7.200", ["10.213.7.128"], "10.213.7.200"),        # a pod keeps its address
    ("10.213.7.200", ["10.213.7.200"], "10.213.7.128"),        # unless another pod holds it
    ("10.213.7.5", [], "10.213.7.128"),                        # Docker's half: not kept
    ("10.213.8.200", [], "10.213.7.128"),                      # another network's
    ("not-an-ip", [], "10.213.7.128"),
    ("10.213.7.255", [], "10.213.7.128"),                      # broadcast
])
def test_choose_pod_ip(previous, taken, chosen):
    assert choose_pod_ip(NET, previous, taken) == chosen


def test_a_full_upper_half_leaves_the_choice_to_docker():
    taken = [f"10.213.7.{i}" for i in range(128, 255)]
    assert choose_pod_ip(NET, "", taken) == ""
    assert choose_pod_ip("10.0.0.0/30", "", []) == ""
