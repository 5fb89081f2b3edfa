"""Validation: schema errors made readable and located, the extra checks, caching, fuzzing."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops.errors import ManifestError
from gitops.manifests import validate as validate_mod
from gitops.manifests.loader import load_text
from gitops.manifests.validate import DEFAULT_VERSION, validate


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def check(text: str, version: str = DEFAULT_VERSION) -> list[tuple[int, str, str]]:
    loaded = load_text(dedent(text), "app.yaml")
    assert loaded.errors == []
    return [(e.line, e.path, e.message) for e in validate(loaded.objects, version)]


APP = dedent("""
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: web-config
      namespace: shop
    data:
      LOG_LEVEL: info
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
      namespace: shop
      labels: {app.kubernetes.io/name: web}
    spec:
      replicas: 2
      selector:
        matchLabels: {app.kubernetes.io/name: web}
        matchExpressions:
        - {key: tier, operator: In, values: [frontend]}
      strategy:
        type: RollingUpdate
        rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}
      template:
        metadata:
          labels: {app.kubernetes.io/name: web, tier: frontend}
        spec:
          initContainers:
          - name: migrate
            image: registry.local/web:1.2.3
            command: [/app/migrate]
          containers:
          - name: web
            image: registry.local/web:1.2.3
            ports:
            - {name: http, containerPort: 8080}
            envFrom:
            - configMapRef: {name: web-config}
            env:
            - name: POD_IP
              valueFrom: {fieldRef: {fieldPath: status.podIP}}
            resources:
              requests: {cpu: 100m, memory: 64Mi}
              limits: {cpu: 1, memory: 128Mi}
            readinessProbe:
              httpGet: {path: /healthz, port: http}
            livenessProbe:
              tcpSocket: {port: 8080}
          volumes:
          - name: cache
            emptyDir: {}
    ---
    apiVersion: v1
    kind: Service
    metadata:
      name: web
      namespace: shop
    spec:
      type: NodePort
      selector: {app.kubernetes.io/name: web}
      ports:
      - {name: http, port: 80, targetPort: http, nodePort: 30080}
      - {name: alt, port: 8081, targetPort: 8080}
    """)


def test_realistic_app_is_valid():
    loaded = load_text(APP, "app.yaml")
    assert loaded.errors == [] and len(loaded.objects) == 3
    assert validate(loaded.objects) == []


DEPLOYMENT = """
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
    spec:
      selector:
        matchLabels: {app: web}
      template:
        metadata:
          labels: {app: web}
        spec:
          containers:
          - name: web
            image: nginx
            ports:
            - containerPort: 80
    """


def deployment(**replace: str) -> str:
    """The valid DEPLOYMENT above with some lines swapped (keys: old line content)."""
    text = dedent(DEPLOYMENT)
    for old, new in replace.items():
        old = old.replace("_", " ")
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def test_base_deployment_is_valid():
    assert check(DEPLOYMENT) == []


@pytest.mark.parametrize("text,expected", [
    # typo'd field: exact line and the path of the unknown key itself
    (deployment(**{"image: nginx": "imagee: nginx"}),
     [(13, "spec.template.spec.containers[0]", 'required field "image" is missing'),
      (14, "spec.template.spec.containers[0].imagee", 'unknown field "imagee"')]),
    (deployment(**{"containerPort: 80": 'containerPort: "80"'}),
     [(16, "spec.template.spec.containers[0].ports[0].containerPort",
       'expected integer, got string "80"')]),
    (deployment(**{"- name: web": "- nam: web"}),
     [(13, "spec.template.spec.containers[0]", 'required field "name" is missing'),
      (13, "spec.template.spec.containers[0].nam", 'unknown field "nam"')]),
    (deployment(**{"metadata:\n  name: web": "metadata:\n  name: web\n  labels: [a]"}),
     [(5, "metadata.labels", "expected object, got array")]),
    (deployment(**{"spec:\n  selector": "spec:\n  replicas: true\n  selector"}),
     [(6, "spec.replicas", "expected integer, got boolean true")]),
    (deployment(**{"image: nginx": "image: nginx\n        resources: {limits: {cpu: [1]}}"}),
     [(15, "spec.template.spec.containers[0].resources.limits.cpu",
       "expected string or number, got array")]),
    (deployment(**{"  template:": "  strategy: {rollingUpdate: {maxSurge: [1]}}\n  template:"}),
     [(8, "spec.strategy.rollingUpdate.maxSurge", "expected string or integer, got array")]),
    (deployment(**{"apiVersion: apps/v1": "apiVersion: apps/v1\nstatus: {replicas: 1}\nextra: 1"}),
     [(3, "extra", 'unknown field "extra"')]),
])
def test_schema_errors_are_readable_and_located(text, expected):
    assert check(text) == expected


@pytest.mark.parametrize("api_version,kind", [
    ("example.com/v1", "Widget"),
    ("apps.example.com/v1", "Deployment"),  # look-alike group must not borrow apps/v1
    ("apps/v1", "DeploymentSpec"),  # a sub-schema, not a kind
    ("v1", "../../../etc/passwd"),
    ("apps/v2", "Deployment"),
    ("a/b/v1", "Deployment"),
])
def test_unknown_kinds(api_version, kind):
    text = f"apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: x\n"
    [(line, path, message)] = check(text)
    assert (line, path) == (2, "kind")
    assert message.startswith(f"unknown kind {kind} in apiVersion {api_version}")
    assert message.endswith("(no CustomResourceDefinition in the repo or the store declares "
                            "it)") == ("." in api_version.partition("/")[0])


def pod(spec: str, name: str = "p", kind: str = "Pod") -> str:
    body = textwrap.indent(dedent(spec), "  ")
    return f"apiVersion: v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{body}"


EXTRA_CHECKS = [
    # -- names
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
     [(3, "metadata", 'required field "name" is missing')]),
    ("apiVersion: v1\nkind: ConfigMap\n",
     [(1, "metadata", 'required field "name" is missing')]),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: My_Config\n",
     [(4, "metadata.name", 'invalid name "My_Config": must be a DNS-1123 subdomain')]),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + "a" * 254 + "\n",
     [(4, "metadata.name", "invalid name")]),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app.example-1.com\n", []),
    ("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team.a\n",
     [(4, "metadata.name", "must be a DNS-1123 label")]),
    ("apiVersion: v1\nkind: Service\nmetadata:\n  name: 1web\n",
     [(4, "metadata.name", "must be a DNS-1035 label")]),
    ("apiVersion: v1\nkind: Service\nmetadata:\n  name: " + "a" * 64 + "\n",
     [(4, "metadata.name", "must be a DNS-1035 label")]),
    ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
     "metadata:\n  name: system:aggregate-to-view\n", []),
    ("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: a/b\n",
     [(4, "metadata.name", "must not be '.' or '..' nor contain '/'")]),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: Team_A\n",
     [(5, "metadata.namespace", 'invalid namespace "Team_A": must be a DNS-1123 label')]),
    # -- selectors
    (deployment(**{"matchLabels: {app: web}": "matchLabels: {app: api}"}),
     [(6, "spec.selector", "selector does not match template labels")]),
    (deployment(**{"matchLabels: {app: web}":
                   "matchExpressions: [{key: app, operator: NotIn, values: [web]}]"}),
     [(6, "spec.selector", "selector does not match template labels")]),
    (deployment(**{"matchLabels: {app: web}":
                   "matchExpressions: [{key: app, operator: Exists}]"}), []),
    (deployment(**{"matchLabels: {app: web}":
                   "matchExpressions: [{key: app, operator: Near}]"}),
     [(6, "spec.selector", "selector uses an unknown operator")]),
    (deployment(**{"  selector:\n    matchLabels: {app: web}\n": "  selector: {}\n"}),
     [(6, "spec.selector", "selector must not be empty")]),
    (deployment(**{"  selector:\n    matchLabels: {app: web}\n": ""}),
     [(5, "spec", 'required field "selector" is missing')]),
    (deployment(**{"kind: Deployment": "kind: StatefulSet",
                   "matchLabels: {app: web}": "matchLabels: {app: db}"}),
     [(6, "spec.selector", "selector does not match template labels")]),
    (deployment(**{"kind: Deployment": "kind: DaemonSet",
                   "matchLabels: {app: web}": "matchLabels: {app: db}"}),
     [(6, "spec.selector", "selector does not match template labels")]),
    (deployment(**{"kind: Deployment": "kind: ReplicaSet", "labels: {app: web}": "labels: {}"}),
     [(6, "spec.selector", "selector does not match template labels")]),
    (deployment(**{"apiVersion: apps/v1": "apiVersion: batch/v1", "kind: Deployment": "kind: Job",
                   "matchLabels: {app: web}": "matchLabels: {app: other}",
                   "    spec:\n": "    spec:\n      restartPolicy: Never\n"}),
     [(6, "spec.selector", "selector does not match template labels")]),
    ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n"
     "      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n", []),
    # -- pod specs: container names, duplicates, ports
    (pod("containers:\n- {name: Web_1, image: x}\n"),
     [(7, "spec.containers[0].name", 'invalid container name "Web_1": must be a DNS-1123 label')]),
    (pod("initContainers:\n- {name: a, image: x}\ncontainers:\n- {name: b, image: x}\n"
         "- {name: a, image: x}\n"),
     [(10, "spec.containers[1].name",
       'duplicate container name "a" (also spec.initContainers[0])')]),
    (pod("containers:\n- name: a\n  image: x\n  ports:\n  - containerPort: 0\n"
         "  - containerPort: 65536\n  - {containerPort: 80, hostPort: 70000}\n"
         "  - {containerPort: 81, hostPort: 0}\n"),
     [(10, "spec.containers[0].ports[0].containerPort", "containerPort 0 out of range 1..65535"),
      (11, "spec.containers[0].ports[1].containerPort",
       "containerPort 65536 out of range 1..65535"),
      (12, "spec.containers[0].ports[2].hostPort", "hostPort 70000 out of range 1..65535")]),
    (pod("containers:\n- {name: a}\n"),
     [(7, "spec.containers[0]", 'required field "image" is missing')]),
    (pod("containers: []\n", kind="Pod"), []),
    ("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: '* * * * *'\n"
     "  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n"
     "          containers:\n          - {name: c, image: x}\n          - {name: c, image: y}\n",
     [(13, "spec.jobTemplate.spec.template.spec.containers[1].name",
       'duplicate container name "c"')]),
    # -- quantities, as the API server parses them
    (pod("containers:\n- name: a\n  image: x\n  resources:\n"
         "    limits: {memory: 64Mb, cpu: 500m}\n    requests: {memory: 32MB}\n"),
     [(10, "spec.containers[0].resources.limits.memory", 'Invalid value: "64Mb": quantities '
       "must match the regular expression"),
      (11, "spec.containers[0].resources.requests.memory", 'Invalid value: "32MB"')]),
    (pod("containers:\n- name: a\n  image: x\n  resources:\n"
         "    limits: {cpu: '1'}\n    requests: {cpu: 1500m, memory: 1e3, x.io/gpu: 1}\n"),
     [(11, "spec.containers[0].resources.requests.cpu",
       'Invalid value: "1500m": must be less than or equal to cpu limit of 1')]),
    (pod("containers:\n- name: a\n  image: x\n  resources:\n    requests: {cpu: '-1'}\n"
         "volumes:\n- name: v\n  emptyDir: {sizeLimit: 1Gb}\n"),
     [(10, "spec.containers[0].resources.requests.cpu", "must be greater than or equal to 0"),
      (13, "spec.volumes[0].emptyDir.sizeLimit", 'Invalid value: "1Gb"')]),
    ("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec:\n"
     "  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {storage: 1gi}\n",
     [(7, "spec.resources.requests.storage", 'Invalid value: "1gi"')]),
    ("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec:\n  hard:\n"
     "    pods: '10'\n    requests.memory: 1 Gi\n",
     [(7, "spec.hard[\"requests.memory\"]", 'Invalid value: "1 Gi"')]),
    (pod("containers:\n- name: a\n  image: x\n  env:\n  - name: MEM\n    valueFrom:\n"
         "      resourceFieldRef: {resource: limits.memory, divisor: 1Mb}\n"
         "volumes:\n- name: scratch\n  ephemeral:\n    volumeClaimTemplate:\n      spec:\n"
         "        accessModes: [ReadWriteOnce]\n"
         "        resources: {requests: {storage: 1GB}}\n"),
     [(12, "spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor",
       'Invalid value: "1Mb"'),
      (19, "spec.volumes[0].ephemeral.volumeClaimTemplate.spec.resources.requests.storage",
       'Invalid value: "1GB"')]),
    ("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\n"
     "spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n"
     "  maxReplicas: 3\n  metrics:\n  - type: Resource\n    resource:\n      name: memory\n"
     "      target: {type: AverageValue, averageValue: 100Mb}\n",
     [(11, "spec.metrics[0].resource.target.averageValue", 'Invalid value: "100Mb"')]),
    ("apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: r}\nhandler: runc\n"
     "overhead:\n  podFixed: {memory: 10 Mi}\n",
     [(6, "overhead.podFixed.memory", 'Invalid value: "10 Mi"')]),
    # -- what a pod names: one bad pod is refused here, before it reaches a node
    (pod("containers:\n- name: a\n  image: x\n  volumeMounts:\n"
         "  - {name: data, mountPath: /d}\n  - {name: cfg, mountPath: /d}\n"
         "volumes:\n- name: cfg\n  configMap: {name: c}\n"),
     [(10, "spec.containers[0].volumeMounts[0].name", 'Not found: "data"'),
      (11, "spec.containers[0].volumeMounts[1].mountPath", 'Invalid value: "/d": must be '
       "unique")]),
    (pod("containers:\n- {name: a, image: x}\nvolumes:\n- name: none\n"
         "- name: two\n  emptyDir: {}\n  nfs: {server: s, path: /p}\n"),
     [(12, "spec.volumes[1].nfs", "Forbidden: may not specify more than 1 volume type")]),
    (pod("containers:\n- name: a\n  image: x\n  env:\n  - name: A\n    valueFrom:\n"
         "      configMapKeyRef: {name: c, key: 'bad key!'}\n"
         "volumes:\n- name: s\n  secret:\n    secretName: s\n    items:\n"
         "    - {key: '..data', path: p}\n"),
     [(12, "spec.containers[0].env[0].valueFrom.configMapKeyRef.key",
       'Invalid value: "bad key!": a valid config key must consist of alphanumeric'),
      (18, "spec.volumes[0].secret.items[0].key", 'Invalid value: "..data"')]),
    # -- services
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: NodePort\n  ports:\n"
     "  - {port: 0, targetPort: 70000, nodePort: 8080}\n  - {port: 80, targetPort: name}\n"
     "  - {port: 81, nodePort: 0}\n",
     [(7, "spec.ports[0].port", "port 0 out of range 1..65535"),
      (7, "spec.ports[0].targetPort", "targetPort 70000 out of range 1..65535"),
      (7, "spec.ports[0].nodePort", "nodePort 8080 out of range 30000..32767")]),
]


@pytest.mark.parametrize("text,expected", EXTRA_CHECKS)
def test_extra_checks(text, expected):
    found = check(text)
    assert len(found) == len(expected), found
    for (line, path, message), (want_line, want_path, fragment) in zip(found, expected):
        assert (line, path) == (want_line, want_path)
        assert fragment in message


def test_duplicates_are_reported_on_the_second_occurrence():
    text = dedent("""
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: a}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: a, namespace: other}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: a}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: a
          namespace: default
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: a}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: a, namespace: ignored}
        """)
    loaded = load_text(text, "dup.yaml")
    errors = validate(loaded.objects)
    assert [(e.line, e.path, e.kind, e.message) for e in errors] == [
        (16, "metadata.name", "ConfigMap", "duplicate object, first defined at dup.yaml:1"),
        (25, "metadata.name", "Namespace", "duplicate object, first defined at dup.yaml:19"),
    ]


def test_duplicates_across_files_name_the_first_file():
    first = load_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
                      "  containers: [{name: c, image: x}]\n", "a.yaml").objects
    second = load_text("\n" + "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
                       "  containers: [{name: c, image: x}]\n", "b.yaml").objects
    errors = validate(first + second)
    assert [str(e) for e in errors] == [
        "b.yaml:4: Pod/p: metadata.name: duplicate object, first defined at a.yaml:1"]


def test_errors_carry_kind_name_and_file():
    err = validate(load_text(deployment(**{"image: nginx": "image: 5"}), "d.yaml").objects)[0]
    assert isinstance(err, ManifestError)
    assert str(err) == ('d.yaml:14: Deployment/web: spec.template.spec.containers[0].image: '
                        'expected string, got integer 5')


def test_validator_is_compiled_once_per_kind():
    objects = load_text(APP).objects
    validate(objects)
    before = validate_mod._validator.cache_info()
    validate(objects)
    validate(objects[:1])
    after = validate_mod._validator.cache_info()
    assert after.misses == before.misses
    assert after.hits == before.hits + 4
    assert validate_mod._fast_registry.cache_info().currsize >= 1


@pytest.mark.parametrize("version", ["1.37", "v1.37.3", "1.30", "1.30.0"])
def test_supported_versions(version):
    assert validate(load_text(APP).objects, version) == []


@pytest.mark.parametrize("version", ["9.99", "1.2", "latest", ""])
def test_unsupported_versions_raise(version):
    with pytest.raises(ValueError):
        validate([], version)


def test_default_version_is_the_newest_bundled():
    newest = max(validate_mod._DIRS)
    assert DEFAULT_VERSION == "%d.%d" % newest


def test_kind_removed_in_older_version_is_unknown_there():
    text = "apiVersion: resource.k8s.io/v1\nkind: DeviceClass\nmetadata: {name: gpu}\nspec: {}\n"
    assert check(text) == []
    assert check(text, "1.30") == [
        (2, "kind", "unknown kind DeviceClass in apiVersion resource.k8s.io/v1")]


# --- never crash ------------------------------------------------------------------------

KINDS = [("v1", "Pod"), ("v1", "Service"), ("v1", "ConfigMap"), ("apps/v1", "Deployment"),
         ("batch/v1", "CronJob"), ("v1", "List"), ("x/v1", "Thing"), ("apps/v1", "StatefulSet")]
KEYS = st.sampled_from(["metadata", "name", "spec", "template", "containers", "ports",
                        "selector", "matchLabels", "labels", "items", "kind", "apiVersion",
                        "port", "targetPort", "nodePort", "containerPort", "image",
                        "matchExpressions", "operator", "values", "key", "namespace",
                        "jobTemplate", "initContainers", "x.y/z", ""]) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers(-70000, 70000) | st.floats(allow_nan=False)
           | st.text(max_size=12) | st.sampled_from(["In", "NotIn", "Exists", "web"]))
JUNK = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(KEYS, inner, max_size=5), max_leaves=40)


@st.composite
def documents(draw):
    body = draw(st.dictionaries(KEYS, JUNK, max_size=6))
    if draw(st.booleans()):
        body["apiVersion"], body["kind"] = draw(st.sampled_from(KINDS))
    return yaml.safe_dump(body)


def assert_never_crashes(text: str) -> None:
    loaded = load_text(text, "fuzz.yaml")
    errors = validate(loaded.objects)
    assert all(isinstance(e, ManifestError) for e in loaded.errors + errors)
    assert all(isinstance(e.line, int) and e.line >= 0 for e in loaded.errors + errors)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(documents(), min_size=1, max_size=3))
def test_junk_documents_never_crash(docs):
    assert_never_crashes("---\n".join(docs))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab: -[]{}&*!|>'\"#\n\t?,%@`~<=0.1")), max_size=80))
def test_junk_text_never_crashes(text):
    assert_never_crashes(text)


ROLLING = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  strategy:
    rollingUpdate: {maxSurge: SURGE, maxUnavailable: UNAVAILABLE}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "app:1"}]
"""


@pytest.mark.parametrize("surge, unavailable, expected", [
    ("1", "25%", []),
    ('"50%"', "0", []),
    ('"abc"', "0", [("spec.strategy.rollingUpdate.maxSurge", "must be an integer or a "
                                                             "percentage")]),
    ("-1", "1", [("spec.strategy.rollingUpdate.maxSurge", "greater than or equal to 0")]),
    ("0", '"0%"', [("spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when")]),
])
def test_rollout_bounds_are_integers_or_percentages(surge, unavailable, expected):
    found = check(ROLLING.replace("SURGE", surge).replace("UNAVAILABLE", unavailable))
    assert [(line, path) for line, path, _ in found] == [(7, p) for p, _ in expected]
    assert all(fragment in message for (_, _, message), (_, fragment) in zip(found, expected))
