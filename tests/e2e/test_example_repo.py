"""example-repo/ end to end: the three-tier guestbook (web -> api -> db on a claim) comes up
with `gitops up --wait`, serves the page and the API through its NodePort, and keeps its
data on the claim's volume across `gitops down` until `gitops down --volumes`."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.e2e.conftest import gitops

pytestmark = pytest.mark.docker

IMAGE = "gitops/python:3.11"          # what example-repo/ runs; scripts/build-images.sh
EXAMPLE_NODE_PORT = "nodePort: 30080"


@pytest.fixture
def example(docker_client, tmp_path) -> tuple[Path, int]:
    """A copy of example-repo/ (independent of the checkout) on a free NodePort, so it
    never collides with an example a user runs on 30080."""
    try:
        docker_client.images.get(IMAGE)
    except Exception:  # noqa: BLE001 - any failure means the image is not there
        pytest.skip(f"{IMAGE} is not built: run scripts/build-images.sh")
    repo = tmp_path / "example-repo"
    shutil.copytree(ROOT / "example-repo", repo)
    port = free_port(30000, 32767)
    service = repo / "web" / "service.yaml"
    text = service.read_text()
    assert EXAMPLE_NODE_PORT in text
    service.write_text(text.replace(EXAMPLE_NODE_PORT, f"nodePort: {port}"))
    return repo, port


def request(port: int, path: str, body: dict | None = None) -> tuple[int, dict, str]:
    """(status, headers, text) of one request to the NodePort."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def messages(port: int) -> dict:
    status, _, text = request(port, "/api/messages")
    assert status == 200, text
    return json.loads(text)


def up(repo: Path, data: str) -> float:
    start = time.monotonic()
    result = gitops("up", str(repo), "--wait", "--timeout", "180", "--data-dir", data,
                    timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    return time.monotonic() - start


def up_on_a_terminal(repo: Path, data: str) -> tuple[str, str]:
    """`up --wait` with stderr on a pseudo-terminal, as a person runs it: (what it drew
    on the terminal, what it printed on stdout)."""
    import os
    import pty
    import select
    import subprocess
    import sys
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gitops", "up", str(repo), "--wait",
                             "--timeout", "180", "--data-dir", data],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    drawn, deadline = b"", time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:            # EIO: the command closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        assert proc.wait(timeout=30) == 0, drawn.decode(errors="replace")[-3000:]
        printed = proc.stdout.read().decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    return drawn.decode(errors="replace"), printed


def claim_volumes(docker_client, instance: str) -> list[str]:
    return [v.name for v in docker_client.volumes.list(
        filters={"label": [f"gitops.instance={instance}", "gitops.pvc.name=db-data"]})]


def test_example_repo_serves_the_guestbook_and_keeps_messages_on_its_claim(
        docker_client, example, tmp_path):
    from gitops.paths import DataDir
    repo, port = example
    data = str(tmp_path / "data")
    instance = DataDir.at(data).instance
    text = f"hello from the e2e test {uuid.uuid4().hex[:8]}"
    try:
        try:
            took = up(repo, data)
            print(f"example-repo: up --wait took {took:.1f}s")

            status, headers, page = request(port, "/")
            assert status == 200 and "<title>Guestbook" in page
            assert "text/html" in headers["Content-Type"]
            # both web replicas answer behind the NodePort (bounded number of requests)
            served = {request(port, "/")[1].get("X-Served-By") for _ in range(20)}
            assert len(served - {None}) == 2, served

            # web proxies /api to the api, which stores through the db (token from the Secret)
            status, _, body = request(port, "/api/messages", {"text": text})
            assert status == 201, body
            assert json.loads(body)["text"] == text
            listed = messages(port)
            assert text in [m["text"] for m in listed["messages"]]
            assert listed["greeting"].startswith("Hello from gitops")   # from api-config
            status, _, body = request(port, "/api/messages", {"nope": 1})
            assert status == 400, body

            # `status`: the source as a tree of objects (sync, health) and their pods
            tree = gitops("status", "--data-dir", data)
            assert tree.returncode == 0, tree.stdout + tree.stderr
            assert "(16/16 healthy)" in tree.stdout
            assert "├── Deployment/default/api  Synced  Healthy" in tree.stdout
            assert sum(ln.strip(" │├└─").startswith("Pod/web-")
                       for ln in tree.stdout.splitlines()) == 2
            # shell completion of pod names asks the running agent
            import os
            import subprocess
            import sys
            done = subprocess.run([sys.executable, "-m", "gitops"], capture_output=True,
                                  text=True, timeout=30, env={
                                      **os.environ, "_GITOPS_COMPLETE": "bash_complete",
                                      "COMP_WORDS": f"gitops logs --data-dir {data} web",
                                      "COMP_CWORD": "4"})
            completed = [ln.split(",", 1)[1] for ln in done.stdout.split()]
            assert len(completed) == 2 and all(n.startswith("web-") for n in completed), \
                done.stdout + done.stderr
            # Prometheus metrics on the agent's API address, with the token as Prometheus
            # sends it (authorization.credentials_file)
            url = json.loads((Path(data) / "agent.json").read_text())["url"]
            token = (Path(data) / "token").read_text().strip()
            with urllib.request.urlopen(urllib.request.Request(
                    url + "/metrics", headers={"Authorization": f"Bearer {token}"}),
                    timeout=10) as resp:
                metrics = resp.read().decode()
            assert 'gitops_objects{health="Healthy",kind="Deployment",sync="Synced"} 3.0' \
                in metrics
            assert 'gitops_syncs_total{result="synced",trigger="startup"} 1.0' in metrics
            assert "gitops_sync_duration_seconds_bucket" in metrics
            conns = [ln for ln in metrics.splitlines()
                     if ln.startswith("gitops_proxy_connections{")]
            assert any("web" in ln for ln in conns), conns
        finally:
            down = gitops("down", "--data-dir", data)
        assert down.returncode == 0, down.stdout + down.stderr
        assert docker_client.containers.list(
            all=True, filters={"label": f"gitops.instance={instance}"}) == []
        # the claim's volume outlives `down`: the same data comes back with the next `up`
        assert len(claim_volumes(docker_client, instance)) == 1

        drawn, printed = up_on_a_terminal(repo, data)   # the live table this time
        assert "\x1b[" in drawn and "WAITING FOR" in drawn and "healthy · revision" in drawn
        assert "all 16 object(s) healthy" in printed
        assert text in [m["text"] for m in messages(port)["messages"]]
    finally:
        down = gitops("down", "--volumes", "--data-dir", data)
    assert down.returncode == 0, down.stdout + down.stderr
    assert claim_volumes(docker_client, instance) == []
    assert docker_client.volumes.list(filters={"label": f"gitops.instance={instance}"}) == []


def test_status_page_chart_deploys_through_helm(docker_client, example, tmp_path):
    """The optional Helm chart of example-repo/ (rendered with the helm extra) runs too."""
    try:
        import helm_python  # noqa: F401
    except ImportError:
        if shutil.which("helm") is None:
            pytest.skip("needs the helm extra or a helm binary")
    repo, _ = example
    port = free_port(30000, 32767)
    values = repo / "charts" / "status-page" / "values.yaml"
    values.write_text(values.read_text().replace("nodePort: 30090", f"nodePort: {port}"))
    data = str(tmp_path / "data")
    try:
        res = gitops("up", str(repo), "--path", "charts/status-page", "--wait", "--timeout",
                     "120", "--data-dir", data, timeout=180)
        assert res.returncode == 0, res.stdout + res.stderr
        status, _, page = request(port, "/")
        assert status == 200 and "<h1>Guestbook status</h1>" in page
    finally:
        down = gitops("down", "--data-dir", data)
    assert down.returncode == 0, down.stdout + down.stderr
