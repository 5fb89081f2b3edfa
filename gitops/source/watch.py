"""Watch a local manifest directory and call back once a burst of changes has settled.

For a source that is a plain directory: the agent syncs on `on_change` (trigger "watch")
instead of waiting for the next poll. The callback only says "something changed"; the sync
reads the whole directory again (level-triggered), so a coalesced or missed event is harmless.

Ignored: hidden paths anywhere below the root (`.git/`, `.gitops/`, `.#file` editor locks,
`.file.swp`), editor leftovers (`*.swp`, `*.swo`, `*.swx`, `*~`), file opens and reads (the
sync itself reads every file: counting those would loop forever), and "directory modified"
events, which only echo a change to one of its entries (seen on its own).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.events import (
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

log = structlog.get_logger(component="source")

EDITOR_SUFFIXES = (".swp", ".swo", ".swx", "~")
_IGNORED_TYPES = {EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE}
# Quiet time after the last event before a sync. The events of one save, rename or
# `git checkout` come microseconds to a few milliseconds apart, so 0.1 s still sees the
# burst whole; each 0.1 s more is added to every edit -> running.
DEBOUNCE = 0.1


class DirWatcher:
    """Recursive watch of `path`; `on_change()` runs `debounce` s after the last event.

    `on_change` runs on the watcher's own thread, one call at a time; events that arrive while
    it runs schedule one more call. `stop()` joins both threads and is idempotent; a change
    still waiting out its debounce when `stop()` is called is dropped.
    """

    def __init__(self, path: Path, on_change: Callable[[], None],
                 debounce: float = DEBOUNCE) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.debounce = debounce
        self._root = os.path.abspath(self.path)
        self._cond = threading.Condition()
        self._deadline: float | None = None   # when to call back, if an event is pending
        self._events = 0                      # relevant events since the last call (for logs)
        self._last_path = ""
        self._started = False
        self._stopping = False
        self._observer: Observer | None = None
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        """Start watching. Raises OSError when the directory cannot be watched (missing,
        inotify limits); nothing is left running then. Calling it again is a no-op."""
        with self._cond:
            if self._started or self._stopping:
                return
            self._started = True
        observer = Observer()
        observer.daemon = True
        try:
            observer.schedule(_Handler(self), self._root, recursive=True)
            observer.start()    # the inotify watches exist once this returns
        except BaseException:
            with self._cond:
                self._started = False
            raise
        worker = threading.Thread(target=self._run, name=f"dir-watch:{self.path.name}",
                                  daemon=True)
        self._observer, self._worker = observer, worker
        worker.start()
        log.info("dir_watch_started", path=self._root, debounce=self.debounce)

    def stop(self) -> None:
        """Stop watching and join the threads; safe to call more than once, or before start."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._deadline = None
            self._cond.notify_all()
        observer, worker = self._observer, self._worker
        if observer is not None:
            observer.stop()
            if threading.current_thread() is not observer:
                observer.join()
        if worker is not None and threading.current_thread() is not worker:
            worker.join()
        if self._started:
            log.info("dir_watch_stopped", path=self._root)

    # -- observer thread ---------------------------------------------------------------------
    def _notice(self, event: FileSystemEvent) -> None:
        if not self._relevant(event):
            return
        with self._cond:
            if self._stopping:
                return
            self._deadline = time.monotonic() + self.debounce
            self._events += 1
            self._last_path = os.fsdecode(event.dest_path or event.src_path)
            self._cond.notify_all()

    def _relevant(self, event: FileSystemEvent) -> bool:
        if event.event_type in _IGNORED_TYPES:
            return False
        if event.is_directory and event.event_type == EVENT_TYPE_MODIFIED:
            return False
        paths = [event.src_path] + ([event.dest_path] if event.dest_path else [])
        return any(not self.ignored(os.fsdecode(p)) for p in paths)

    def ignored(self, path: str) -> bool:
        """Is a change at `path` (absolute, or relative to the cwd) one to ignore?"""
        rel = os.path.relpath(os.path.abspath(path), self._root)
        if rel == "." or rel == ".." or rel.startswith(".." + os.sep):
            return False        # the root itself: always worth a look
        parts = rel.split(os.sep)
        return any(p.startswith(".") for p in parts) or parts[-1].endswith(EDITOR_SUFFIXES)

    # -- worker thread -----------------------------------------------------------------------
    def _run(self) -> None:
        with self._cond:
            while True:
                while not self._stopping and self._deadline is None:
                    self._cond.wait()
                if self._stopping:
                    return
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                events, last = self._events, self._last_path
                self._deadline, self._events = None, 0
                self._cond.release()
                try:
                    log.debug("dir_watch_changed", path=self._root, events=events, last=last)
                    self.on_change()
                except Exception:   # one failing callback must not end the watch
                    log.exception("dir_watch_callback_failed", path=self._root)
                finally:
                    self._cond.acquire()


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: DirWatcher) -> None:
        super().__init__()
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.watcher._notice(event)
