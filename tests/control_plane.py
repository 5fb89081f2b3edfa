"""The control plane as the daemon wires it (the controllers and the scheduler on one
informer), driven pass by pass: `run_once` is one pass of each, controllers first."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from gitops.controllers.manager import ControllerManager
from gitops.scheduler.loop import SchedulerLoop
from gitops.store.informer import Informer
from gitops.store.registry import Registry, execute


class ControlPlane:
    def __init__(self, store: Registry, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time, **manager_options) -> None:
        self.informer = Informer(store)
        self.controllers = ControllerManager(store, rng, clock, informer=self.informer,
                                             **manager_options)
        self.scheduler = SchedulerLoop(
            self.informer,
            lambda actions: execute(store, actions, "scheduler", self.controllers.events),
            clock)

    def run_once(self) -> None:
        self.controllers.run_once()
        self.scheduler.run_once()

    def __getattr__(self, name: str):
        return getattr(self.controllers, name)
