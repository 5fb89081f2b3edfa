"""DockerRuntime.attach_session (kubectl attach) on a real container: the process's own
stdin and stdout, from now on."""

from __future__ import annotations

import threading

import pytest

from gitops.agent.docker import DockerRuntime

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("tty", [False, True])
def test_attach_talks_to_the_containers_own_process(docker_client, tty):
    api = docker_client.api
    config = api.create_container_config(
        "gitops/busybox:1", ["sh", "-c", "echo before; while read l; do echo \"got $l\"; done; "
                             "echo bye >&2"],
        detach=True, stdin_open=True, tty=tty, labels={"gitops.test": "true"})
    config["StdinOnce"] = True          # as the agent makes it for `stdinOnce: true`
    container = docker_client.containers.get(api.create_container_from_config(config)["Id"])
    container.start()
    try:
        runtime = DockerRuntime("attachtest", docker_client)
        session = runtime.attach_session(container.id, stdin=True)
        seen: list[tuple[int, bytes]] = []
        reader = threading.Thread(target=lambda: seen.extend(session.output()), daemon=True)
        reader.start()
        session.write(b"one\n")
        session.resize(100, 30)
        if tty:         # a terminal's end of input is ^D at the start of a line
            session.write(b"\x04")
        else:
            session.close_stdin()        # stdinOnce: the process's stdin closes with it
        reader.join(15)
        assert not reader.is_alive(), "the attachment did not end with the process"
        text = b"".join(data for _, data in seen).decode().replace("\r", "")
        assert "got one" in text and "bye" in text
        assert "before" not in text          # output from before the attachment is not replayed
        if not tty:
            assert (2, b"bye\n") in seen     # stderr kept apart without a terminal
        session.close()
        container.wait(timeout=10)
    finally:
        container.remove(force=True)
