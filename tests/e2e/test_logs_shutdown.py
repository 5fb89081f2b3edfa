"""Log follows never hold the agent: an interrupted `gitops logs -f` or `kubectl logs -f`
ends when its client goes away, and the agent stops on SIGTERM by itself (never killed)
while another follow is still attached to a quiet container."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import git, gitops
from tests.kube_support import kubectl_path

pytestmark = pytest.mark.docker

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: quiet}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: gitops/busybox:1
      imagePullPolicy: IfNotPresent
      command: ["sh", "-c", "echo started; exec sleep 3600"]
"""


def _follow(*argv: str) -> subprocess.Popen:
    # Ctrl-C as on a terminal: a suite started in the background (`cmd &`) inherits
    # SIGINT ignored, and Python keeps an ignored SIGINT ignored.
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=os.environ.copy(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    line = proc.stdout.readline()          # the follow is attached once output arrived
    assert line.strip() == b"started", (line, proc.stderr.read() if proc.poll() else b"")
    return proc


def _interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C: the follow ends within 10 s; else the failure shows where it hangs
    (SIGABRT makes Python's faulthandler and Go's runtime print every thread's stack)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"{proc.args[:6]} did not end on SIGINT within 10s; its stacks:\n"
                    + err.decode(errors="replace")[-6000:])


def _exited(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_follows_end_with_their_client_and_never_hold_shutdown(repo, tmp_path):
    from gitops.paths import DataDir
    (repo / "app" / "pod.yaml").write_text(POD)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "quiet")
    data = str(tmp_path / "data")
    kubeconfig = tmp_path / "kubeconfig"
    follows: list[subprocess.Popen] = []
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "90", "--data-dir", data)
        assert up.returncode == 0, up.stdout + up.stderr
        made = gitops("kubeconfig", "--data-dir", data)
        assert made.returncode == 0, made.stderr
        kubeconfig.write_text(made.stdout)
        # faulthandler: a follow that does not end shows its stacks (see _interrupt)
        cli = [sys.executable, "-X", "faulthandler", "-m", "gitops", "logs", "-f", "quiet",
               "--data-dir", data]
        kubectl = [kubectl_path(), "--kubeconfig", str(kubeconfig), "--cache-dir",
                   str(tmp_path / "kcache"), "logs", "-f", "quiet"]
        # interrupted follows (Ctrl-C): their streams end on the agent's side
        for argv in (cli, kubectl):
            proc = _follow(*argv)
            follows.append(proc)
            _interrupt(proc)
        # one still attached when the agent is asked to stop
        attached = _follow(*cli)
        follows.append(attached)
        pid = json.loads(DataDir.at(data).agent_file.read_text())["pid"]
        os.kill(pid, signal.SIGTERM)
        assert _exited(pid, 15), "the agent did not stop on SIGTERM (a follow held it)"
        attached.wait(timeout=10)            # its client sees the end of the stream
        log = (DataDir.at(data).log_file).read_text()
        assert '"agent_stopped"' in log      # a clean exit, not a kill
    finally:
        for proc in follows:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        gitops("down", "--data-dir", data)
