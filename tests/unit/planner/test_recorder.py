"""What a plan found without acting (adopted IDs, resources gone) is recorded as one state
version before the first step, however many resources it names: a write per resource
made a cold apply of N apps write N versions of the whole state first."""

from __future__ import annotations

from pathlib import Path

from unit.deployment import Deployment
from unit.fake_provider import FakeHost

STACK = "[stack]\nname = \"demo\"\n" + "".join(
    f"\n[apps.a{i}]\nimage = \"busybox:1.36\"\nport = 8080\nhost_port = {18080 + i}\n" for i in range(5))


def test_a_cold_apply_records_the_images_it_found_in_one_version(tmp_path: Path):
    d = Deployment(tmp_path, STACK, hosts={"local": FakeHost("local", images={"busybox:1.36": {}})})
    d.apply()  # the host has the image: nothing pulled, each app's image found
    first_step = next(i for i, e in enumerate(d.memory.entries)
                      if any(".container[" in k for k in _state(e)))
    found = d.memory.entries[:first_step]
    assert len(found) == 1
    assert sorted(k for k in _state(found[0])) == [f"app.a{i}.image@local" for i in range(5)]


def test_a_destroy_forgets_in_one_version_the_images_it_leaves(tmp_path: Path):
    d = Deployment(tmp_path, STACK, hosts={"local": FakeHost("local", images={"busybox:1.36": {}})})
    d.apply()
    before = len(d.memory.entries)
    d.destroy()
    written = d.memory.entries[before:]
    assert not d.state.resources
    # the first version drops the five images (they stay on the host: not berth's to
    # remove), each later one a container
    assert sorted(_state(written[0])) == [f"app.a{i}.container[0]@local" for i in range(5)]
    assert len(written) == 1 + 5


def _state(entry: dict) -> dict:
    import json

    return json.loads(entry["state"])["resources"]
