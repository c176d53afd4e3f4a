"""Serving: the gateway in front of a host's apps, its routes during an apply, and the
liveness watcher beside it. The core planner knows these only through their plan
entries and steps."""
