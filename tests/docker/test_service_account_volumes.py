"""ServiceAccount tokens and projected volumes on the real engine: the token, the API's CA
and the namespace at /var/run/secrets/kubernetes.io/serviceaccount (none when
automountServiceAccountToken is false), a token the API accepts for that ServiceAccount,
and a projected volume's sources in one directory."""

from __future__ import annotations

import time
import uuid

import pytest

from gitops.agent.docker import DockerRuntime
from gitops.agent.node import NodeAgent
from gitops.api.kube.tls import ca_pem
from gitops.model import ObjectKey, satoken
from gitops.model.addresses import pick_subnet
from gitops.store import Registry, SqliteStore
from tests.docker.test_pod_spec_fields import c, get, make, run_in, until
from tests.kube_support import KubeServer

pytestmark = pytest.mark.docker
KEY = b"5a" * 32
SA_DIR = satoken.MOUNT_PATH


@pytest.fixture
def node(docker_client, tmp_path):
    instance = uuid.uuid4().hex[:8]
    store = Registry(SqliteStore(tmp_path / "state.db"))
    runtime = DockerRuntime(instance, docker_client)
    agent = NodeAgent(store, runtime, "test-node", f"gitops-{instance}", tmp_path / "pods")
    agent.setup(pick_subnet(instance, runtime.used_subnets()))
    agent.enable_service_accounts(ca_pem(tmp_path), key=KEY)
    yield agent
    agent.close()
    runtime.cleanup(agent.network)
    store.close()


def running(node, name):
    return until(node, lambda: (p := get(node, name)) and
                 p["status"].get("phase") == "Running" and p)


def test_the_pods_token_is_mounted_and_the_api_accepts_it(node, tmp_path):
    node.store.create({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "robot", "namespace": "default"}})
    make(node, "client", [c("app", "exec sleep 3600")], serviceAccountName="robot")
    running(node, "client")
    listing = run_in(node, "client", "app", f"ls {SA_DIR}").split()
    assert sorted(listing) == ["ca.crt", "namespace", "token"]
    assert run_in(node, "client", "app", f"cat {SA_DIR}/namespace") == "default"
    assert run_in(node, "client", "app", f"cat {SA_DIR}/ca.crt") == \
        (tmp_path / "ca.crt").read_text()
    # read-only, as the kubelet mounts it
    assert "Read-only" in run_in(node, "client", "app", f"echo x > {SA_DIR}/token 2>&1")
    token = run_in(node, "client", "app", f"cat {SA_DIR}/token")
    with KubeServer(node.store, tmp_path, service_account_key=KEY) as api:
        status, _, review = api.request(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            token=token, secure=True)
        assert status == 201
        assert review["status"]["userInfo"]["username"] == \
            "system:serviceaccount:default:robot"


@pytest.mark.parametrize("pod_says, sa_says, mounted", [
    (False, None, False), (None, False, False), (True, False, True)])
def test_automount_service_account_token(node, pod_says, sa_says, mounted):
    sa = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": "robot", "namespace": "default"}}
    if sa_says is not None:
        sa["automountServiceAccountToken"] = sa_says
    node.store.create(sa)
    spec = {"serviceAccountName": "robot"}
    if pod_says is not None:
        spec["automountServiceAccountToken"] = pod_says
    make(node, "quiet", [c("app", "exec sleep 3600")], **spec)
    running(node, "quiet")
    found = run_in(node, "quiet", "app", f"test -f {SA_DIR}/token && echo yes || echo no")
    assert found.strip() == ("yes" if mounted else "no")


def test_a_projected_volume_gathers_its_sources(node):
    node.store.create({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "cfg", "namespace": "default"},
                       "data": {"mode": "fast"}})
    node.store.create({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "creds", "namespace": "default"},
                       "stringData": {"password": "hunter2"}})
    make(node, "proj", [c("app", "exec sleep 3600", volumeMounts=[
        {"name": "all", "mountPath": "/etc/all"}])],
        automountServiceAccountToken=False,
        volumes=[{"name": "all", "projected": {"sources": [
            {"configMap": {"name": "cfg"}},
            {"secret": {"name": "creds", "items": [{"key": "password", "path": "db/pw"}]}},
            {"downwardAPI": {"items": [{"path": "labels",
                                        "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"serviceAccountToken": {"audience": "vault", "path": "vault-token",
                                     "expirationSeconds": 900}}]}}])
    running(node, "proj")
    assert run_in(node, "proj", "app", "cat /etc/all/mode") == "fast"
    assert run_in(node, "proj", "app", "cat /etc/all/db/pw") == "hunter2"
    assert run_in(node, "proj", "app", "cat /etc/all/labels") == "proj"
    token = run_in(node, "proj", "app", "cat /etc/all/vault-token")
    claims = satoken.verify(KEY, token, time.time(), "vault")
    assert claims is not None and claims.pod == "proj"
    # a ConfigMap change reaches the running container, as the kubelet's atomic swap
    node.store.update({**node.store.get(ObjectKey("ConfigMap", "default", "cfg")),
                       "data": {"mode": "slow"}})
    until(node, lambda: run_in(node, "proj", "app", "cat /etc/all/mode") == "slow")
