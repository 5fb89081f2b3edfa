"""DirWatcher on a real temp dir with the real watchdog observer. Every wait is bounded."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from gitops.source.watch import DirWatcher

DEBOUNCE = 0.3
SETTLE = DEBOUNCE * 3 + 0.3     # long enough for a stray second call to show up


class Calls:
    def __init__(self, fail_first: bool = False) -> None:
        self.times: list[float] = []
        self.cond = threading.Condition()
        self.fail_first = fail_first

    def __call__(self) -> None:
        with self.cond:
            self.times.append(time.monotonic())
            self.cond.notify_all()
            if self.fail_first and len(self.times) == 1:
                raise RuntimeError("callback blew up")

    @property
    def count(self) -> int:
        with self.cond:
            return len(self.times)

    def wait_for(self, n: int, timeout: float = 2.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.times) >= n, timeout=timeout)


@pytest.fixture
def watch(tmp_path):
    started: list[DirWatcher] = []

    def make(root: Path = tmp_path, calls: Calls | None = None) -> tuple[DirWatcher, Calls]:
        calls = calls or Calls()
        watcher = DirWatcher(root, calls, debounce=DEBOUNCE)
        watcher.start()
        started.append(watcher)
        return watcher, calls

    yield make
    for watcher in started:
        watcher.stop()


def test_one_write_is_one_call_after_the_debounce(tmp_path, watch):
    _, calls = watch()
    written = time.monotonic()
    (tmp_path / "app.yaml").write_text("kind: ConfigMap\n")
    assert calls.wait_for(1, timeout=2.0)
    assert calls.times[0] - written >= DEBOUNCE * 0.9
    time.sleep(SETTLE)
    assert calls.count == 1


def test_a_burst_of_writes_is_coalesced(tmp_path, watch):
    _, calls = watch()
    for i in range(20):
        (tmp_path / f"f{i % 5}.yaml").write_text(f"n: {i}\n")
        time.sleep(0.01)
    assert calls.wait_for(1, timeout=3.0)
    time.sleep(SETTLE)
    assert 1 <= calls.count <= 2


def test_hidden_paths_and_editor_files_are_ignored(tmp_path, watch):
    (tmp_path / "sub").mkdir()
    _, calls = watch()
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "index").write_bytes(b"\0" * 100)
    (git / "refs" / "heads" / "main").write_text("abc\n")
    (git / "index").unlink()
    for name in ("app.yaml.swp", "app.yaml~", ".#app.yaml", ".app.yaml.swp", "x.swo"):
        (tmp_path / name).write_text("x")
        (tmp_path / "sub" / name).write_text("x")
    (tmp_path / ".gitops").mkdir()
    (tmp_path / ".gitops" / "store.db").write_text("x")
    time.sleep(SETTLE)
    assert calls.count == 0
    (tmp_path / "sub" / "real.yaml").write_text("x")      # the watch was live all along
    assert calls.wait_for(1)


def test_reading_files_does_not_trigger(tmp_path, watch):
    for i in range(3):
        (tmp_path / f"{i}.yaml").write_text("x")
    _, calls = watch()
    for _ in range(5):
        for path in sorted(tmp_path.rglob("*.yaml")):
            path.read_bytes()         # what every sync does: must not loop into a new sync
    time.sleep(SETTLE)
    assert calls.count == 0


def test_recursive_new_dirs_deletes_and_atomic_renames(tmp_path, watch):
    _, calls = watch()
    deep = tmp_path / "apps" / "web"
    deep.mkdir(parents=True)
    (deep / "deploy.yaml").write_text("x")
    assert calls.wait_for(1)
    time.sleep(SETTLE)
    n = calls.count
    (deep / "deploy.yaml").unlink()
    assert calls.wait_for(n + 1)
    time.sleep(SETTLE)
    n = calls.count
    tmp = tmp_path / ".deploy.yaml.tmp"      # hidden temp file renamed into place
    tmp.write_text("y")
    os.replace(tmp, deep / "deploy.yaml")
    assert calls.wait_for(n + 1)


def test_stop_stops_calls_and_is_idempotent(tmp_path, watch):
    watcher, calls = watch()
    (tmp_path / "a.yaml").write_text("1")
    assert calls.wait_for(1)
    watcher.stop()
    watcher.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("dir-watch:")]
    (tmp_path / "a.yaml").write_text("2")
    time.sleep(SETTLE)
    assert calls.count == 1


def test_stop_drops_a_pending_change(tmp_path, watch):
    watcher, calls = watch()
    (tmp_path / "a.yaml").write_text("1")
    time.sleep(0.05)                  # the event is in, its debounce not yet over
    watcher.stop()
    time.sleep(SETTLE)
    assert calls.count == 0


def test_stop_before_start_and_start_twice(tmp_path):
    calls = Calls()
    idle = DirWatcher(tmp_path, calls)
    idle.stop()
    idle.start()                      # stopped for good: start does nothing
    (tmp_path / "a.yaml").write_text("1")
    watcher = DirWatcher(tmp_path, calls, debounce=DEBOUNCE)
    watcher.start()
    watcher.start()
    try:
        (tmp_path / "b.yaml").write_text("1")
        assert calls.wait_for(1)
        time.sleep(SETTLE)
        assert calls.count == 1
    finally:
        watcher.stop()


def test_a_failing_callback_does_not_end_the_watch(tmp_path, watch):
    _, calls = watch(calls=Calls(fail_first=True))
    (tmp_path / "a.yaml").write_text("1")
    assert calls.wait_for(1)
    time.sleep(SETTLE)
    (tmp_path / "a.yaml").write_text("2")
    assert calls.wait_for(2)


def test_stop_from_inside_the_callback(tmp_path):
    box: list[DirWatcher] = []
    done = threading.Event()

    def on_change() -> None:
        box[0].stop()
        done.set()

    watcher = DirWatcher(tmp_path, on_change, debounce=0.05)
    box.append(watcher)
    watcher.start()
    (tmp_path / "a.yaml").write_text("1")
    assert done.wait(2.0)
    watcher.stop()


def test_missing_directory_raises_and_leaves_nothing_running(tmp_path):
    watcher = DirWatcher(tmp_path / "nope", Calls())
    with pytest.raises(OSError):
        watcher.start()
    watcher.stop()


def test_ignored_paths():
    watcher = DirWatcher(Path("/repo"), lambda: None)
    for path, ignored in [("/repo/a.yaml", False), ("/repo/sub/Kustomization", False),
                          ("/repo", False), ("/repo/.git/index", True),
                          ("/repo/sub/.hidden/a.yaml", True), ("/repo/a.yaml~", True),
                          ("/repo/sub/.#a.yaml", True), ("/repo/a.yaml.swp", True),
                          ("/repo/templates/_helpers.tpl", False)]:
        assert watcher.ignored(path) is ignored, path


def test_the_default_debounce_sees_a_checkout_whole(tmp_path):
    """What the agent's watch uses: files rewritten back to back (as a `git checkout` or a
    save does) are one sync, not one per file."""
    calls = Calls()
    watcher = DirWatcher(tmp_path, calls)
    watcher.start()
    try:
        for i in range(40):
            (tmp_path / f"f{i}.yaml").write_text(f"n: {i}\n")
        assert calls.wait_for(1, timeout=3.0)
        time.sleep(SETTLE)
        assert calls.count == 1
    finally:
        watcher.stop()
