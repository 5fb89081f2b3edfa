"""Scheduler: pure node choice plus the bind pass."""
