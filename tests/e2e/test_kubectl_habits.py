"""kubectl's habits against an agent on the real engine: `kubectl run -i --rm` prints the
pod's output and deletes it, and the kubeconfig stays valid across `down`/`up` (the HTTPS
port is kept per data dir)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import gitops
from tests.kube_support import kubectl_path, run_kubectl

pytestmark = pytest.mark.docker

REPO = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: prod}\n"


def test_run_rm_and_a_kubeconfig_that_outlives_a_restart(docker_client, tmp_path):
    kubectl_path()
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "cm.yaml").write_text(REPO)
    data = str(tmp_path / "data")
    config = tmp_path / "kube" / "config"
    config.parent.mkdir()
    try:
        up = gitops("up", str(repo), "--wait", "--timeout", "60", "--data-dir", data)
        assert up.returncode == 0, up.stderr
        made = gitops("kubeconfig", "--data-dir", data)
        assert made.returncode == 0, made.stderr
        config.write_text(made.stdout)
        for name, script in (("quick", "echo hello-quick"),
                             ("slow", "sleep 2; echo hello-slow; echo second")):
            res = run_kubectl(config, "run", name, "-i", "--rm", "--restart=Never",
                              "--image=gitops/busybox:1", "--image-pull-policy=IfNotPresent",
                              "--", "sh", "-c", script, timeout=90)
            assert res.returncode == 0, res.stderr
            assert f"hello-{name}" in res.stdout and f'pod "{name}" deleted' in res.stdout
            gone = run_kubectl(config, "wait", "--for=delete", f"pod/{name}", "--timeout=60s")
            assert gone.returncode == 0, gone.stderr          # Terminating, then gone
        assert gitops("down", "--data-dir", data).returncode == 0
        up = gitops("up", str(repo), "--wait", "--timeout", "60", "--data-dir", data)
        assert up.returncode == 0, up.stderr
        again = gitops("kubeconfig", "--data-dir", data).stdout
        assert again == made.stdout                        # same port, same CA, same token
        res = run_kubectl(config, "get", "cm", "settings", "-o", "jsonpath={.data.mode}")
        assert res.returncode == 0 and res.stdout == "prod", res.stderr
    finally:
        gitops("down", "--data-dir", data)
