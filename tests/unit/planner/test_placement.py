"""planner.placement as data: apps' GPU requests + host inventories + the previous
assignment → devices per container, or the plan error a user would read.

Each case: `hosts` (host -> GPU names, indexes 0..), `apps` (name -> {gpus, type, host
(omitted: the file named none), replicas}), `previous` ("app/replica" -> "host:0,1"),
then `expect` ("app/replica" -> "host:0,1") or `error` (words every one of the
messages must hold, as a list per diagnostic).
"""

from __future__ import annotations

import pytest

from planner.desired import AppConfig
from planner.diagnostics import DiagnosticsError
from planner.placement import matches, place
from providers.gpus import Gpu, parse_nvidia_smi

H100 = "NVIDIA H100 80GB HBM3"
L4 = "NVIDIA L4"
L40S = "NVIDIA L40S"

CASES = {
    "two apps share a host": dict(
        hosts={"a": [H100, H100]},
        apps={"llm": {"gpus": 1, "host": "a"}, "embed": {"gpus": 1, "host": "a"}},
        expect={"llm/0": "a:0", "embed/0": "a:1"},
    ),
    "replicas get distinct devices": dict(
        hosts={"a": [H100] * 4},
        apps={"llm": {"gpus": 2, "host": "a", "replicas": 2}},
        expect={"llm/0": "a:0,1", "llm/1": "a:2,3"},
    ),
    "kept when nothing changed, even if lower indexes are free": dict(
        hosts={"a": [H100] * 3},
        apps={"llm": {"gpus": 1, "host": "a"}, "embed": {"gpus": 1, "host": "a"}},
        previous={"llm/0": "a:2", "embed/0": "a:0"},
        expect={"llm/0": "a:2", "embed/0": "a:0"},
    ),
    "a new app does not move the others": dict(
        hosts={"a": [H100] * 3},
        apps={"new": {"gpus": 1, "host": "a"}, "llm": {"gpus": 1, "host": "a"}},
        previous={"llm/0": "a:0"},
        expect={"llm/0": "a:0", "new/0": "a:1"},
    ),
    "count changed: reassigned": dict(
        hosts={"a": [H100] * 3},
        apps={"llm": {"gpus": 2, "host": "a"}},
        previous={"llm/0": "a:2"},
        expect={"llm/0": "a:0,1"},
    ),
    "previous device gone from the host": dict(
        hosts={"a": [H100]},
        apps={"llm": {"gpus": 1, "host": "a"}},
        previous={"llm/0": "a:3"},
        expect={"llm/0": "a:0"},
    ),
    "kept devices that block a fit are given up": dict(
        hosts={"a": [H100, H100, H100]},
        apps={"small": {"gpus": 1, "host": "a"}, "big": {"gpus": 2, "host": "a"}},
        previous={"small/0": "a:1"},
        expect={"small/0": "a:1", "big/0": "a:0,2"},
    ),
    "typed requests are served before untyped ones": dict(
        hosts={"a": [H100, L4]},
        apps={"any": {"gpus": 1, "host": "a"}, "h": {"gpus": 1, "type": "H100", "host": "a"}},
        expect={"h/0": "a:0", "any/0": "a:1"},
    ),
    "type matches a whole word": dict(
        hosts={"a": [L40S, L4]},
        apps={"small": {"gpus": 1, "type": "l4", "host": "a"}},
        expect={"small/0": "a:1"},
    ),
    "oversubscription names the host, the apps and the counts": dict(
        hosts={"a": [H100, H100]},
        apps={"llm": {"gpus": 2, "host": "a"}, "embed": {"gpus": 1, "host": "a"}},
        error=[["host a has 2 GPUs (2 × NVIDIA H100 80GB HBM3)", "llm (2 GPUs)", "embed (1 GPU)",
                "ask for 3", "embed cannot be placed"]],
    ),
    "replicas count towards oversubscription": dict(
        hosts={"a": [H100, H100]},
        apps={"llm": {"gpus": 1, "host": "a", "replicas": 3}},
        error=[["host a has 2 GPUs", "llm (1 GPU × 3 replicas)", "ask for 3"]],
    ),
    "a host without GPUs": dict(
        hosts={"local": []},
        apps={"llm": {"gpus": 1, "host": "local"}},
        error=[["host local has 0 GPUs (no GPUs)", "ask for 1"]],
    ),
    "missing accelerator type": dict(
        hosts={"a": [H100, H100]},
        apps={"llm": {"gpus": 1, "type": "A100", "host": "a"}},
        error=[["app llm asks for accelerator A100, but host a has none (it has 2 × NVIDIA H100 80GB HBM3)"]],
    ),
    "every problem is reported at once": dict(
        hosts={"a": [H100], "b": [L4]},
        apps={"x": {"gpus": 1, "type": "A100", "host": "a"}, "y": {"gpus": 2, "host": "b"}},
        error=[["app x", "A100"], ["host b has 1 GPU", "ask for 2"]],
    ),
    "no host named: the first host, in order, where it fits": dict(
        hosts={"a": [H100], "b": [L4, L4], "c": [H100, H100]},
        apps={"pinned": {"gpus": 1, "host": "a"}, "llm": {"gpus": 1, "type": "H100"}},
        order=["a", "b", "c"],
        expect={"pinned/0": "a:0", "llm/0": "c:0"},
    ),
    "no host named: stays on its previous host": dict(
        hosts={"a": [H100], "c": [H100, H100]},
        apps={"llm": {"gpus": 1, "type": "H100"}},
        previous={"llm/0": "c:1"},
        order=["a", "c"],
        expect={"llm/0": "c:1"},
    ),
    "no host named: nowhere free": dict(
        hosts={"a": [H100], "b": [L4]},
        apps={"pinned": {"gpus": 1, "host": "a"}, "llm": {"gpus": 1, "type": "H100"}},
        order=["a", "b"],
        error=[["app llm asks for 1 H100 and names no host", "a has 1 × NVIDIA H100 80GB HBM3 (1 taken)",
                "b has 1 × NVIDIA L4"]],
    ),
    "apps without GPUs are not placed": dict(
        hosts={"a": []},
        apps={"web": {"gpus": 0, "host": "a"}},
        expect={},
    ),
}


def _app(name: str, spec: dict) -> AppConfig:
    return AppConfig(name=name, image="x", port=8000, host_port=8000, gpus=spec["gpus"],
                     gpu_type=spec.get("type"), replicas=spec.get("replicas", 1),
                     host=spec.get("host", "local"), host_auto="host" not in spec)


def _devices(text: str) -> tuple[str, tuple[str, ...]]:
    host, devices = text.split(":")
    return host, tuple(devices.split(","))


@pytest.mark.parametrize("name", list(CASES))
def test_placement_case(name: str) -> None:
    case = CASES[name]
    inventories = {
        host: tuple(Gpu(index=str(i), name=gpu, memory_mib=1, uuid=f"GPU-{host}-{i}") for i, gpu in enumerate(names))
        for host, names in case["hosts"].items()
    }
    apps = [_app(n, s) for n, s in case["apps"].items()]
    previous = {}
    for key, text in case.get("previous", {}).items():
        app, replica = key.split("/")
        previous[(app, int(replica))] = _devices(text)
    order = case.get("order", list(case["hosts"]))
    if "error" in case:
        with pytest.raises(DiagnosticsError) as caught:
            place(apps, inventories, previous, order)
        messages = [d.summary for d in caught.value.diagnostics]
        assert len(messages) == len(case["error"]), messages
        for message, words in zip(messages, case["error"]):
            for word in words:
                assert word in message, (word, message)
        return
    result = place(apps, inventories, previous, order)
    got = {f"{app}/{i}": f"{result.hosts[app]}:{','.join(d)}" for (app, i), d in result.devices.items()}
    assert got == case["expect"]


def test_placement_is_deterministic() -> None:
    inventories = {"a": tuple(Gpu(str(i), H100, 1, str(i)) for i in range(8))}
    apps = [_app(f"app{i}", {"gpus": 1 + i % 2, "host": "a"}) for i in range(5)]
    first = place(apps, inventories, {}, ["a"])
    assert all(place(apps, inventories, {}, ["a"]) == first for _ in range(5))
    # The result applied back as the previous assignment changes nothing.
    again = place(apps, inventories, {k: (first.hosts[k[0]], v) for k, v in first.devices.items()}, ["a"])
    assert again == first


def test_nvidia_smi_csv_parses() -> None:
    text = ("0, NVIDIA H100 80GB HBM3, 81559, GPU-aaaa\n"
            "1, NVIDIA A100-SXM4-40GB, 40960, GPU-bbbb\n\n")
    gpus = parse_nvidia_smi(text)
    assert gpus == (Gpu("0", H100, 81559, "GPU-aaaa"), Gpu("1", "NVIDIA A100-SXM4-40GB", 40960, "GPU-bbbb"))
    assert matches(gpus[1], "A100") and not matches(gpus[0], "A100")
    assert parse_nvidia_smi("") == ()


@pytest.mark.parametrize(("name", "gpu_type", "expected"), [
    ("NVIDIA A100-SXM4-80GB", "A100_80GB", True),
    ("NVIDIA A100-SXM4-40GB", "A100_80GB", False),
    ("NVIDIA A100 80GB PCIe", "A100", True),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTX_PRO_6000", True),
    ("NVIDIA L40S", "L4", False),
    ("NVIDIA L4", "l4", True),
    ("NVIDIA A10G", "A10", False),
    ("NVIDIA H100 80GB HBM3", "H100_40GB", False),
])
def test_types_of_several_words_match_each_word(name: str, gpu_type: str, expected: bool) -> None:
    """Truss and Cerebrium name types like A100_80GB; nvidia-smi says "NVIDIA A100-SXM4-80GB"."""
    assert matches(Gpu(index="0", name=name, memory_mib=1, uuid="GPU-x"), gpu_type) is expected


# -- cpus against the host's CPU count ---------------------------------------------------------

CPUS = """
[stack]
name = "demo"

[apps.web]
image = "busybox:1.36"
port = 8080
cpus = {cpus}

[apps.api]
image = "busybox:1.36"
port = 8081
cpus = 1
"""


def test_cpus_above_the_hosts_count_is_a_plan_time_error_naming_the_key(tmp_path) -> None:
    import pytest

    from unit.deployment import Deployment
    from unit.fake_provider import FakeHost
    from planner.diagnostics import DiagnosticsError

    host = FakeHost("local")
    host.cpu_total = 2
    d = Deployment(tmp_path, CPUS.replace("{cpus}", "4"), hosts={"local": host})
    with pytest.raises(DiagnosticsError) as caught:
        d.apply()
    (problem,) = caught.value.diagnostics
    assert problem.key == "apps.web.cpus" and problem.file == "berth.toml"
    assert "asks for 4 CPUs, but host local has 2" in problem.summary
    assert not [op for op, _ in host.log if op != "observe"]  # nothing touched
    assert host.cpu_reads == 1  # one read for the host, however many apps ask
    d.write(CPUS.replace("{cpus}", "2"))
    assert d.apply().ok
    assert not d.plan(refresh=False).has_changes  # without refresh no host is asked
    

def test_cpus_keys_are_named_as_each_format_writes_them() -> None:
    import pytest

    from planner.desired import AppConfig
    from planner.diagnostics import DiagnosticsError
    from planner.placement import check_cpus

    def app(origin: str) -> AppConfig:
        return AppConfig(name="main", image="x", port=8000, host_port=8000, cpus=8, origin=origin)

    for origin, key in [("cerebrium.toml (Cerebrium)", "hardware.cpu"), ("config.yaml (Truss)", "resources.cpu"),
                        ("berth.toml", "apps.main.cpus")]:
        with pytest.raises(DiagnosticsError) as caught:
            check_cpus([app(origin)], {"local": 4})
        assert caught.value.diagnostics[0].key == key
    check_cpus([app("berth.toml")], {"local": None})  # an engine that does not say: not checked


def test_what_an_app_needs_of_its_host_is_checked_not_limited() -> None:
    import pytest

    from planner.desired import AppConfig
    from planner.diagnostics import DiagnosticsError
    from planner.placement import check_cpus

    def app(**needs) -> AppConfig:
        return AppConfig(name="llm", image="x", port=8000, host_port=8000, origin="config.yaml (Truss)", **needs)

    check_cpus([app(needs_cpus=4, needs_memory=16 * 1024**3)], {"local": 4}, {"local": 16 * 1024**3})
    with pytest.raises(DiagnosticsError) as caught:
        check_cpus([app(needs_cpus=8, needs_memory=80 * 1024**3)], {"local": 4}, {"local": 16 * 1024**3})
    [cpus, memory] = caught.value.diagnostics
    assert (cpus.summary, cpus.key) == ("app llm needs 8 CPUs, but host local has 4", "resources.cpu")
    assert (memory.summary, memory.key) == ("app llm needs 80 GiB of memory, but host local has 16 GiB",
                                            "resources.memory")
    check_cpus([app(needs_cpus=8, needs_memory=80 * 1024**3)], {"local": None}, {"local": None})  # unknown: not checked


def test_a_truss_that_needs_more_than_its_host_has_is_refused_at_plan_time(tmp_path) -> None:
    import pytest

    from unit.deployment import Deployment
    from unit.fake_provider import FakeHost
    from planner.diagnostics import DiagnosticsError

    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "config.yaml").write_text(
        "base_image: {image: 'busybox:1.36'}\n"
        "docker_server: {no_build: true, server_port: 8000, predict_endpoint: /, readiness_endpoint: /,"
        " liveness_endpoint: /}\n"
        "resources: {cpu: '8', memory: 80Gi}\n")
    host = FakeHost("local")
    host.cpu_total, host.memory_bytes = 4, 16 * 1024**3
    d = Deployment(tmp_path, '[apps.llm]\nfrom = "llm/config.yaml"\n', hosts={"local": host})
    with pytest.raises(DiagnosticsError) as caught:
        d.apply()
    assert [(p.key, p.line, p.summary) for p in caught.value.diagnostics] == [
        ("resources.cpu", None, "app llm needs 8 CPUs, but host local has 4"),
        ("resources.memory", None, "app llm needs 80 GiB of memory, but host local has 16 GiB")]
    assert not [op for op, _ in host.log if op != "observe"]  # nothing touched
    host.cpu_total, host.memory_bytes = 8, 80 * 1024**3
    assert d.apply().ok
