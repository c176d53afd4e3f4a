"""Issue 17, what an apply says and stops on: the closing counts say what happened on the
hosts (a replace stopped half-way counts its removal), and a run whose lock is no longer
its own starts no new step and says why, not "internal error"."""

from __future__ import annotations

import threading
from pathlib import Path

from unit.deployment import Deployment, MemoryStore
from unit.fake_provider import FakeHost
from planner.plan import Action
from state.errors import LockLostError

THREE_APPS = """
[stack]
name = "demo"

[apps.a]
image = "busybox:1.36"
port = 8080
host_port = 18080
replicas = 2
env = { V = "1" }

[apps.b]
image = "busybox:1.36"
port = 8080
host_port = 18090
replicas = 2
env = { V = "1" }

[apps.c]
image = "busybox:1.36"
port = 8080
host_port = 18100
env = { V = "1" }
"""


class StopsAfter(FakeHost):
    """Sets `stop` (Ctrl-C) once `after` containers were removed."""

    def __init__(self, after: int) -> None:
        super().__init__("local")
        self.after, self.stop = after, threading.Event()

    def remove_container(self, container_id: str) -> None:
        super().remove_container(container_id)
        if len(self.ops("remove")) >= self.after:
            self.stop.set()


def test_an_interrupted_replace_counts_what_it_destroyed_and_created(tmp_path: Path) -> None:
    host = StopsAfter(after=3)
    d = Deployment(tmp_path, THREE_APPS, hosts={"local": host})
    assert d.apply().ok
    d.write(THREE_APPS.replace('V = "1"', 'V = "2"'))
    host.log.clear()
    result = d.apply(stop=host.stop, parallelism=2)
    assert result.interrupted
    assert all(c.action is Action.REPLACE for c in d.last_plan.actions if c.type == "container")
    # a replace creates the new container (then starts it), a first start runs one
    removed, created = len(host.ops("remove")), len(host.ops("run")) + len(host.ops("create"))
    assert removed >= 3 and removed + created < 10  # stopped part-way
    counts = result.counts()
    assert (counts["destroyed"], counts["added"], counts["changed"]) == (removed, created, 0), (counts, host.log)


def test_a_failed_replace_counts_what_it_destroyed_and_created(tmp_path: Path) -> None:
    d = Deployment(tmp_path, THREE_APPS)
    assert d.apply().ok
    d.write(THREE_APPS.replace('V = "1"', 'V = "2"'))
    d.local.log.clear()
    # the 6th change is the second app's create (the first app's replace is five: create, stop
    # the old, start, remove the old, rename), which the engine refuses: its old container
    # stays untouched, and the other two apps are replaced
    d.local.fail_at = d.local.changes_made + 6
    result = d.apply(parallelism=1)
    assert not result.ok and not result.interrupted
    removed, created = len(d.local.ops("remove")), len(d.local.ops("run")) + len(d.local.ops("create"))
    assert removed >= 2, d.local.log
    assert result.counts() == {"added": created, "changed": 0, "destroyed": removed}, d.local.log


def test_a_failed_destroy_counts_what_it_removed(tmp_path: Path) -> None:
    d = Deployment(tmp_path, THREE_APPS)
    assert d.apply().ok
    d.local.fail_at = d.local.changes_made + 3  # the third removal fails
    result = d.apply(destroy=True, parallelism=1)
    assert not result.ok and not result.interrupted
    removed = [s for s, o in result.outcomes.items() if o.status == "ok"]
    assert 2 <= len(removed) < len(result.outcomes), d.local.log
    assert result.counts() == {"added": 0, "changed": 0, "destroyed": len(removed)}, d.local.log


def test_a_full_apply_still_counts_every_change(tmp_path: Path) -> None:
    d = Deployment(tmp_path, THREE_APPS)
    result = d.apply()
    assert result.counts() == {"added": len(d.last_plan.actions), "changed": 0, "destroyed": 0}
    d.write(THREE_APPS.replace('port = 8080\nhost_port = 18100\nenv = { V = "1" }',
                               'port = 8080\nhost_port = 18100\nenv = { V = "2" }\ncpus = 0.5'))
    assert d.apply().counts() == {"added": 1, "changed": 0, "destroyed": 1}


# -- item 3: a lock lost mid-apply stops the run ---------------------------------------------


class LosesLock(MemoryStore):
    """A store whose lock another berth force-unlocked once `lost` is set: every write is
    refused, as DiskStore refuses it."""

    lost = False

    def write(self, state, **kwargs):  # type: ignore[no-untyped-def]
        if self.lost:
            raise LockLostError("this berth no longer holds the lock on memory (it was removed, by "
                                "`berth force-unlock`?), so it writes no more state.")
        return super().write(state, **kwargs)


class LockGoesAtFirstRun(FakeHost):
    store: LosesLock

    def run_container(self, spec):  # type: ignore[no-untyped-def]
        found = super().run_container(spec)
        self.store.lost = True
        return found


def test_a_lost_lock_starts_no_new_step_and_says_why(tmp_path: Path) -> None:
    host = LockGoesAtFirstRun("local")
    d = Deployment(tmp_path, THREE_APPS, hosts={"local": host})
    d.memory = host.store = LosesLock()
    result = d.apply(parallelism=1)
    assert len(host.ops("run")) == 1, host.log  # nothing started after the write was refused
    assert not result.ok and not result.interrupted and "no longer holds the lock" in (result.lock_lost or "")
    failed = [e for e in d.events if e.kind == "failed"]
    assert len(failed) == 1 and failed[0].message.startswith("this berth no longer holds the lock"), failed
    assert any(o.status == "not_started" for o in result.outcomes.values())
