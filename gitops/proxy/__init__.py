"""Userspace Service proxy (no iptables): a pure balancer and the listeners that use it."""

from gitops.proxy.balancer import Balancer, Endpoint
from gitops.proxy.listeners import ListenAddr, Proxy

__all__ = ["Balancer", "Endpoint", "ListenAddr", "Proxy"]
