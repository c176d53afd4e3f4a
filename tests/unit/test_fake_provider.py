"""The fake host answers as the Docker engine does where the planner relies on it, and
has every method of the Provider protocol (one added there must be added here)."""

from __future__ import annotations

import inspect

import pytest

from unit.fake_provider import FakeHost
from providers.base import Provider
from providers.types import LABEL_ADDRESS, LABEL_APP, LABEL_STACK, ContainerSpec, ProviderError


def spec(name: str = "demo-web-0", host_port: int | None = 18080, stack: str = "demo", image: str = "busybox:1.36",
         address: str = "app.web.container[0]@local") -> ContainerSpec:
    return ContainerSpec(name=name, image=image, port=8080, host_port=host_port,
                         labels={LABEL_STACK: stack, LABEL_APP: "web", LABEL_ADDRESS: address})


def host() -> FakeHost:
    fake = FakeHost("local")
    fake.ensure_image("busybox:1.36", print)
    return fake


def test_the_fake_has_every_method_of_the_provider_protocol() -> None:
    wanted = {name for name, _ in inspect.getmembers(Provider, inspect.isfunction) if not name.startswith("_")}
    assert wanted, "the Provider protocol lists no methods?"
    for name in sorted(wanted):
        method = getattr(FakeHost, name, None)
        assert callable(method), f"FakeHost lacks Provider.{name}"
        assert list(inspect.signature(method).parameters) == list(inspect.signature(getattr(Provider, name)).parameters), name


def test_a_container_needs_its_image_on_the_host() -> None:
    with pytest.raises(ProviderError, match="No such image"):
        FakeHost("local").run_container(spec())


def test_a_held_port_fails_the_start_and_leaves_the_container_created() -> None:
    fake = host()
    fake.run_container(spec())
    with pytest.raises(ProviderError, match="port is already allocated"):
        fake.run_container(spec(name="demo-web-1", address="app.web.container[1]@local"))
    assert fake.container_at("app.web.container[1]@local").state == "created"


def test_a_name_held_by_the_same_stack_is_taken_over_and_by_another_refused() -> None:
    fake = host()
    first = fake.run_container(spec())
    second = fake.run_container(spec(host_port=18081))
    assert first not in fake.containers and second in fake.containers
    with pytest.raises(ProviderError, match="berth does not manage it"):
        fake.run_container(spec(stack="other", host_port=18082))


def test_a_picked_port_is_published_and_inspect_shows_it() -> None:
    fake = host()
    container_id = fake.run_container(spec(host_port=None))
    (binding,) = fake.inspect_container(container_id)["NetworkSettings"]["Ports"]["8080/tcp"]
    assert int(binding["HostPort"]) in range(32768, 61000)
    assert fake.probe(int(binding["HostPort"]), "/ready", 1.0) == (True, "HTTP 200")


def test_probes_follow_the_running_container_and_never_ready() -> None:
    fake = host()
    fake.run_container(spec())
    assert fake.probe(18080, None, 1.0)[0] and not fake.probe(18081, None, 1.0)[0]
    fake.never_ready.add("web")
    assert fake.probe(18080, "/ready", 1.0) == (False, "HTTP 503")
    fake.never_ready.clear()
    fake.stop_behind_berth("app.web.container[0]@local")
    assert not fake.probe(18080, "/ready", 1.0)[0]


def test_images_are_tagged_untagged_and_go_with_their_last_tag() -> None:
    fake = FakeHost("local")
    labels = {"berth.content-hash": "abc"}
    image_id = fake.build_image("/ctx", "Dockerfile", {}, "berth-demo-web:abc", labels, print)
    assert fake.build_image("/ctx", "Dockerfile", {}, "berth-demo-worker:abc", labels, print) == image_id
    assert fake.tags() == {"berth-demo-web:abc", "berth-demo-worker:abc"}
    fake.remove_image("berth-demo-web:abc")
    assert image_id in fake.images
    fake.remove_image("berth-demo-worker:abc")
    assert image_id not in fake.images
    fake.remove_image("berth-demo-worker:abc")  # absent: no error


def test_the_nth_change_fails_before_it_is_made() -> None:
    fake = host()
    fake.fail_at = fake.changes_made + 2
    fake.run_container(spec())
    with pytest.raises(ProviderError, match="injected"):
        fake.write_secret(("demo", "web", "tok"), b"v")
    assert fake.secret_files == {}
    assert fake.observe("demo").secrets == () and len(fake.observe("demo").containers) == 1
