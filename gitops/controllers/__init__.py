"""Controllers: pure reconcile functions returning actions, plus the executor."""
