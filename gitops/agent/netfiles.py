"""The /etc/resolv.conf and /etc/hosts a pod's containers see, as the kubelet writes them
(pure): dnsPolicy with dnsConfig merged in, and the managed hosts file with the pod's own
name (its FQDN when it has a subdomain, as StatefulSet pods do) and hostAliases.

The node reads its own /etc/resolv.conf and /etc/hosts and hands them in (host_resolv,
host_hosts). On the pod network "the node's resolver" is the engine's embedded one
(127.0.0.11), which forwards to the host's: that is what Docker's own resolv.conf says.
"""

from __future__ import annotations

from gitops.model.dns import CLUSTER_DOMAIN, RESOLV_OPTIONS, search_path

ENGINE_RESOLVER = "127.0.0.11"
MAX_NAMESERVERS = 3          # the resolver reads no more (Kubernetes cuts there too)
MAX_SEARCHES = 32


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of a resolv.conf."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options += fields[1:]
    return nameservers, searches, options


def _merge_options(base: list[str], extra: list[dict]) -> list[str]:
    """dnsConfig.options over the base ones, by name (ndots:2 replaces ndots:5)."""
    out: dict[str, str] = {}
    for option in base:
        name, _, value = option.partition(":")
        out[name] = option
    for option in extra:
        if not isinstance(option, dict) or not option.get("name"):
            continue
        value = option.get("value")
        out[option["name"]] = option["name"] + (f":{value}" if value not in (None, "") else "")
    return list(out.values())


def _effective_policy(spec: dict, dns_server: str) -> str:
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    elif policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"            # the kubelet's rule for host-network pods
    if policy == "ClusterFirst" and not dns_server:
        policy = "Default"            # no cluster DNS (yet): the kubelet falls back too
    return policy


def resolv_conf_text(pod: dict, dns_server: str, host_resolv: str = "") -> str | None:
    """The pod's /etc/resolv.conf per dnsPolicy (ClusterFirst by default: the cluster DNS
    and the Kubernetes search path; Default: the node's resolver; None: dnsConfig alone),
    with dnsConfig merged in. None: the engine's own resolv.conf is exactly that."""
    spec = pod["spec"]
    config = spec.get("dnsConfig") or {}
    policy = _effective_policy(spec, dns_server)
    if policy == "ClusterFirst":
        base = ([dns_server], search_path(pod["metadata"]["namespace"], CLUSTER_DOMAIN),
                list(RESOLV_OPTIONS))
    elif policy == "Default":
        if not config:
            return None
        nameservers, searches, options = parse_resolv_conf(host_resolv)
        base = ((nameservers, searches, options) if spec.get("hostNetwork")
                else ([ENGINE_RESOLVER], searches, ["ndots:0"]))
    else:                              # None: dnsConfig alone
        base = ([], [], [])
    nameservers = list(dict.fromkeys([*base[0], *(config.get("nameservers") or [])]))
    searches = list(dict.fromkeys([*base[1], *(config.get("searches") or [])]))
    options = _merge_options(base[2], config.get("options") or [])
    lines = [f"nameserver {ns}" for ns in nameservers[:MAX_NAMESERVERS]]
    if searches:
        lines.append("search " + " ".join(searches[:MAX_SEARCHES]))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def pod_fqdn(pod: dict, domain: str = CLUSTER_DOMAIN) -> str:
    """hostname.subdomain.namespace.svc.domain when the pod has a subdomain, else ""."""
    spec, meta = pod["spec"], pod["metadata"]
    if not spec.get("subdomain"):
        return ""
    name = (spec.get("hostname") or meta["name"])[:63]
    return f"{name}.{spec['subdomain']}.{meta['namespace']}.svc.{domain}"


_LOCAL = ("127.0.0.1\tlocalhost\n"
          "::1\tlocalhost ip6-localhost ip6-loopback\n"
          "fe00::0\tip6-localnet\n"
          "fe00::0\tip6-mcastprefix\n"
          "fe00::1\tip6-allnodes\n"
          "fe00::2\tip6-allrouters\n")


def _aliases(spec: dict) -> str:
    out = ""
    for alias in spec.get("hostAliases") or []:
        names = [n for n in alias.get("hostnames") or [] if isinstance(n, str)]
        if alias.get("ip") and names:
            out += f"{alias['ip']}\t" + "\t".join(names) + "\n"
    return "\n# Entries added by HostAliases.\n" + out if out else ""


def hosts_text(pod: dict, ip: str, hostname: str, host_hosts: str = "") -> str | None:
    """The managed /etc/hosts: localhost, the pod's own address and name(s), then its
    hostAliases. A host-network pod keeps the node's file (None) unless it has aliases
    to add to it."""
    spec = pod["spec"]
    if spec.get("hostNetwork"):
        if not _aliases(spec):
            return None
        return ("# Kubernetes-managed hosts file (host network).\n" + host_hosts.rstrip("\n")
                + "\n" + _aliases(spec))
    out = "# Kubernetes-managed hosts file.\n" + _LOCAL
    if ip:
        fqdn = pod_fqdn(pod)
        names = [fqdn, hostname] if fqdn and fqdn != hostname else [hostname]
        out += f"{ip}\t" + "\t".join(names) + "\n"
    return out + _aliases(spec)
