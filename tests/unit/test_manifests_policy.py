from gitops.manifests.loader import load_text
from gitops.manifests.policy import check

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      hostNetwork: true
      containers:
        - name: c
          image: x:1
          securityContext:
            privileged: true
      volumes:
        - name: root
          hostPath: {path: /}
"""


def test_host_access_refused_with_file_line_and_path():
    objs = load_text(DEPLOY, "web.yaml").objects
    errors = check(objs, allow_host_access=False)
    got = sorted((e.line, e.path) for e in errors)
    assert got == [(10, "spec.template.spec.hostNetwork"),
                   (15, "spec.template.spec.containers[0].securityContext.privileged"),
                   (18, "spec.template.spec.volumes[0].hostPath")]
    assert all("--allow-host-access" in e.message and e.file == "web.yaml" for e in errors)
    assert check(objs, allow_host_access=True) == []
