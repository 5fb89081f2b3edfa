"""An in-cluster client in a pod talks to the agent's API as on a cluster: it finds it
through KUBERNETES_SERVICE_HOST/PORT and kubernetes.default.svc (the `kubernetes` Service),
trusts it with the mounted ca.crt, and is the pod's ServiceAccount with the mounted
token: whoami answers, what RBAC does not grant is 403."""

from __future__ import annotations

import json
import textwrap

from tests.e2e.conftest import gitops
from tests.e2e.test_services import get_json, wait_for

CLIENT = textwrap.dedent('''\
    import json, os, ssl, time, urllib.request
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    ctx = ssl.create_default_context(cafile=f"{sa}/ca.crt")
    def call(base, method, path, body=None):
        token = open(f"{sa}/token").read()
        req = urllib.request.Request(base + path, method=method,
            data=json.dumps(body).encode() if body else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
    env = "https://{}:{}".format(os.environ["KUBERNETES_SERVICE_HOST"],
                                 os.environ["KUBERNETES_SERVICE_PORT"])
    for attempt in range(60):
        try:
            _, who = call(env, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                          {"apiVersion": "authentication.k8s.io/v1",
                           "kind": "SelfSubjectReview"})
            pods, _ = call("https://kubernetes.default.svc", "GET",
                           "/api/v1/namespaces/default/pods")
            print("whoami=" + who["status"]["userInfo"]["username"], flush=True)
            print(f"pods={pods}", flush=True)
            break
        except Exception as exc:
            print(f"retry: {exc!r}", flush=True)
            time.sleep(1)
    time.sleep(3600)
''')

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: client
    image: gitops/python:3.11
    imagePullPolicy: IfNotPresent
    command: ["python3", "-c", %s]
"""


def test_a_pod_reaches_the_api_as_its_service_account(tmp_path):
    manifests, data = tmp_path / "manifests", str(tmp_path / "data")
    manifests.mkdir()
    (manifests / "client.yaml").write_text(POD % json.dumps(CLIENT))
    try:
        up = gitops("up", str(manifests), "--wait", "--timeout", "90", "--data-dir", data)
        assert up.returncode == 0, up.stdout + up.stderr
        svc = get_json(data, "svc", "kubernetes")
        assert svc["spec"]["ports"][0]["port"] == 443

        def answered():
            logs = gitops("logs", "client", "--data-dir", data).stdout
            return logs if "pods=" in logs else None
        logs = wait_for(answered, 90, "the pod's client to reach the API")
        assert "whoami=system:serviceaccount:default:default" in logs, logs
        assert "pods=403" in logs, logs
    finally:
        gitops("down", "--data-dir", data)
