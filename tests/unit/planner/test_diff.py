"""planner.diff as data: desired apps + stored state + observed hosts → expected changes.

Each file in plan_cases/ is one case (JSON), run by test_plan_case:

    description   what the case shows
    world         apps as a successful apply left them: `applied()` builds the state and
                  the hosts from them exactly as apply would (default: nothing, a fresh host)
    apps | change the desired apps: `apps` in full, or `change`, a patch over `world`
                  (an app or a field set to null is removed)
    world_content, content
                  per build context path, a version word standing for its files, when
                  applied and now (default "v1"); content hashes are derived from it
    world_secret_values, secret_values
                  per secret name, a version word standing for its value, when applied
                  and now (default "v1"); the keyed digests are derived from it
    secret_sources
                  per secret name, its desired source {"env"|"file"|"command": ...}
                  (default, and always when applied: env NAME in upper case)
    state         per address: null (state lost it) or a patch {"status", "id"}
    host          per address: null (removed out of band; for a secret, its file) or a
                  patch of the observed container {"state", "image_id", "labels"} /
                  image {"id", "tags", "labels"}
    add_containers, add_images
                  more things on a host: {"address", "id", "state", "labels", "copy_of"}
                  / {"host", "id", "tags", "digests", "labels"}
    destroy       diff(..., destroy=True)
    state_moves   {OLD: NEW} applied to state as `berth state mv OLD NEW` does (app.X or addresses)
    forgotten     engine IDs `berth state rm` forgot (State.forgotten)
    expect        per address, an action word (create/update/replace/delete/no-op), or
                  {"action", "symbol", "forces", "reason", "no_reason", "reasons",
                  "changed", "ids", "id_prefixes", "after": null}, or a list of those when several
                  changes share the address; every change not listed must be a no-op
    count         how many changes the plan has in all
    summary       plan.summary()
    order         "STEP < STEP" pairs: the step graph runs the first before the second
    xfail         a suspected bug: the case is expected to fail, for this reason

App fields are AppConfig's; defaults here: port 8000, and `build` may be a bare context
path. No Docker: the world is plain data.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from planner.desired import AppConfig, BuildSource, SecretSource, Stack
from planner.diff import diff
from planner.graph import Step, build_graph
from planner.plan import Action, Plan
from planner.resources import (
    canonical_hash,
    container_attributes,
    container_spec,
    image_attributes,
    image_labels,
    image_ref,
    secret_attributes,
    secret_names,
)
from providers.types import (
    LABEL_ADDRESS,
    LABEL_APP,
    LABEL_STACK,
    Observation,
    ObservedContainer,
    ObservedImage,
    normalize_ref,
)
from state.address import Address, moves
from state.model import ResourceState, State

CASES = Path(__file__).parent / "plan_cases"
STACK = "demo"
LINEAGE = "0b1c2d3e-lineage"
WORDS = {"create", "update", "replace", "delete", "no-op"}


# -- the world: desired apps, state and hosts as plain data --------------------------------


def app_config(name: str, fields: dict[str, Any]) -> AppConfig:
    fields = {"port": 8000, **fields}
    if isinstance(fields.get("build"), str):
        fields["build"] = BuildSource(context=fields["build"])
    if fields.get("command") is not None:
        fields["command"] = tuple(fields["command"])
    for key in ("depends_on", "secrets"):
        if key in fields:
            fields[key] = tuple(fields[key])
    return AppConfig(name=name, **fields)


def configs(apps: dict[str, dict[str, Any]]) -> dict[str, AppConfig]:
    return {name: app_config(name, fields) for name, fields in apps.items()}


def content_hash(build: BuildSource, version: str) -> str:
    """Stands for planner.contexthash.context_hash of a context whose files are `version`."""
    return canonical_hash([build.context, build.dockerfile, build.args, version])


def hashes_for(apps: dict[str, AppConfig], versions: dict[str, str]) -> dict[str, str]:
    """Content hashes per built app; `versions` is per context path (default "v1")."""
    return {name: content_hash(app.build, versions.get(app.build.context, "v1"))
            for name, app in apps.items() if app.build}


def secret_digest(name: str, version: str) -> str:
    """Stands for planner.secrets.digest of a value that is `version`."""
    return "hmac-sha256:" + canonical_hash(["secret", name, version])


def digests_for(apps: dict[str, AppConfig], versions: dict[str, str]) -> dict[str, str]:
    """Digests of every secret an app uses; `versions` is per secret name (default "v1")."""
    return {name: secret_digest(name, versions.get(name, "v1")) for app in apps.values() for name in secret_names(app)}


def sources_for(apps: dict[str, AppConfig], given: dict[str, dict[str, Any]]) -> dict[str, SecretSource]:
    """Each secret's source: env NAME (upper case) unless the case gives one."""
    sources = {}
    for name in {n for app in apps.values() for n in secret_names(app)}:
        kind, ref = next(iter(given.get(name, {"env": name.upper()}).items()))
        ref = tuple(ref) if kind == "command" else ref
        shown = " ".join(ref) if kind == "command" else ref
        sources[name] = SecretSource(name=name, source=f"{kind} {shown}", **{kind: ref})
    return sources


def image_id_for(key: str) -> str:
    return "sha256:" + canonical_hash(["image", key])


def container_id_for(address: Address) -> str:
    return f"ctr-{address.app}-{address.index}"


class World:
    """State and hosts as plain dicts while a case perturbs them, then frozen into
    diff's inputs. Containers and images are the fields of ObservedContainer/Image."""

    def __init__(self, hosts: set[str]) -> None:
        self.resources: dict[str, ResourceState] = {}
        self.serial = 0
        self.containers: dict[str, list[dict[str, Any]]] = {h: [] for h in hosts}
        self.images: dict[str, list[dict[str, Any]]] = {h: [] for h in hosts}
        self.secrets: dict[str, list[tuple[str, str]]] = {h: [] for h in hosts}  # (app, secret) files

    def state(self) -> State | None:
        if not self.serial and not self.resources:
            return None
        return State(stack=STACK, lineage=LINEAGE, serial=self.serial, resources=dict(self.resources),
                     forgotten=list(getattr(self, "forgotten", [])))

    def observed(self) -> dict[str, Observation]:
        return {
            host: Observation(
                host=host,
                containers=tuple(ObservedContainer(**c) for c in self.containers.get(host, [])),
                images=tuple(ObservedImage(**{**i, "tags": tuple(i["tags"]), "digests": tuple(i["digests"])})
                             for i in self.images.get(host, [])),
                secrets=tuple(self.secrets.get(host, [])),
            )
            for host in sorted(set(self.containers) | set(self.images))
        }

    def container(self, address: str) -> dict[str, Any]:
        found = [c for cs in self.containers.values() for c in cs if c["labels"].get(LABEL_ADDRESS) == address]
        assert found, f"case error: no container for {address} on any host"
        return found[0]

    def image(self, address: str) -> dict[str, Any]:
        """The image state records for an image address."""
        resource = self.resources.get(address)
        assert resource is not None, f"case error: {address} is not in the applied state"
        host = Address.parse(address).host
        return next(i for i in self.images[host] if i["id"] == resource.id)


def applied(apps: dict[str, AppConfig], hashes: dict[str, str], hosts: set[str],
            digests: dict[str, str] | None = None) -> World:
    """The state and hosts exactly as a successful apply of `apps` leaves them: one image
    per content hash (apps built from one context share it, each with its own tag), one
    per pulled reference, one secret file per app and secret it uses."""
    digests = digests if digests is not None else digests_for(apps, {})
    sources = sources_for(apps, {})
    world = World(hosts | {app.host for app in apps.values()})
    world.serial = 1 if apps else 0
    for app in apps.values():
        image_attrs = image_attributes(STACK, app, hashes.get(app.name))
        ref = image_ref(image_attrs)
        image_address = str(Address.image(app.name, app.host))
        if app.build is not None:
            key, tag = image_attrs["content_hash"], ref
            labels = image_labels(STACK, image_attrs["content_hash"])
        else:
            key, tag, labels = normalize_ref(ref), normalize_ref(ref), {}
        image_id = image_id_for(key)
        # A build for an SSH host is made on the local engine and sent: it is on both.
        on = {app.host, "local"} if app.build is not None else {app.host}
        for host in sorted(on):
            images = world.images[host]
            image = next((i for i in images if i["id"] == image_id), None)
            if image is None:
                image = {"id": image_id, "tags": [], "digests": [], "labels": labels}
                images.append(image)
            listed = image["digests" if "@" in tag else "tags"]  # pulled by digest: Docker lists it in RepoDigests
            if tag not in listed:
                listed.append(tag)
        world.resources[image_address] = ResourceState(
            address=image_address, type="image", host=app.host, id=image_id, attributes=image_attrs)
        for name in secret_names(app):
            key = str(Address(app=app.name, kind="secret", host=app.host, secret=name))
            world.secrets[app.host].append((app.name, name))
            world.resources[key] = ResourceState(
                address=key, type="secret", host=app.host, id=f"/var/lib/berth/secrets/{STACK}/{app.name}/{name}",
                attributes=secret_attributes(sources[name], digests[name]))
        versions = {name: digests[name] for name in secret_names(app)}
        for index in range(app.replicas):
            address = Address.container(app.name, index, app.host)
            attrs = container_attributes(STACK, app, index, ref, versions)
            spec = container_spec(STACK, address, attrs)
            cid = container_id_for(address)
            world.containers[app.host].append(
                {"id": cid, "name": spec.name, "state": "running", "image_id": image_id, "labels": spec.labels,
                 "host_ports": (attrs["host_port"],)})
            world.resources[str(address)] = ResourceState(
                address=str(address), type="container", host=app.host, id=cid, status="ready", attributes=attrs)
    return world


def merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """patch over base, recursively for nested dicts except env and secret_env (replaced
    whole, so a case states the new mapping); None removes the key."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("env", "secret_env"):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def perturb(world: World, case: dict[str, Any]) -> None:
    as_applied = copy.deepcopy(world)
    for address, patch in case.get("host", {}).items():
        parsed = Address.parse(address)
        if parsed.kind == "secret":
            assert patch is None, "case error: a secret file on a host is there (no entry) or not (null)"
            world.secrets[parsed.host].remove((parsed.app, parsed.secret))
        elif parsed.kind == "image":
            image = world.image(address)
            host = Address.parse(address).host
            if patch is None:
                world.images[host].remove(image)
            else:
                image.update(merged(image, patch))
        else:
            container = world.container(address)
            if patch is None:
                for found in world.containers.values():
                    if container in found:
                        found.remove(container)
            else:
                container.update(merged(container, patch))
    for address, patch in case.get("state", {}).items():
        if patch is None:
            world.resources.pop(address)
        else:
            world.resources[address] = world.resources[address].model_copy(update=patch)
    for old, new in case.get("state_moves", {}).items():
        for before, after in moves(list(world.resources), old, new).items():
            world.resources[after] = world.resources.pop(before).model_copy(update={"address": after})
    world.forgotten = case.get("forgotten", [])
    for extra in case.get("add_containers", []):
        address = Address.parse(extra["address"])
        if "copy_of" in extra:
            container = copy.deepcopy(as_applied.container(extra["copy_of"]))
        else:
            container = {"image_id": "", "labels": {
                LABEL_STACK: STACK, LABEL_APP: address.app, LABEL_ADDRESS: str(address)}}
        container = merged(container, {"state": "running", "name": extra["id"], **extra})
        world.containers.setdefault(address.host, []).append(
            {k: container[k] for k in ("id", "name", "state", "image_id", "labels")})
    for extra in case.get("add_images", []):
        world.images.setdefault(extra.get("host", "local"), []).append(
            {"tags": [], "digests": [], "labels": {}} | {k: v for k, v in extra.items() if k != "host"})


def plan_for(case: dict[str, Any]) -> Plan:
    world_apps = configs(case.get("world", {}))
    if "apps" in case:
        desired_raw = case["apps"]
    else:
        desired_raw = merged(case.get("world", {}), case.get("change", {}))
    desired = configs(desired_raw)
    hosts = {"local"} | {a.host for a in desired.values()}
    world = applied(world_apps, hashes_for(world_apps, case.get("world_content", {})), hosts,
                    digests_for(world_apps, case.get("world_secret_values", {})))
    perturb(world, case)
    stack = Stack(name=STACK, file="/project/berth.toml", apps=desired,
                  secrets=sources_for(desired, case.get("secret_sources", {})))
    return diff(stack, world.state(), world.observed(), hashes_for(desired, case.get("content", {})),
                destroy=case.get("destroy", False),
                secret_digests=digests_for(desired, case.get("secret_values", {})))


# -- checking a plan against a case's expectations ------------------------------------------


def check_change(change, want: str | dict[str, Any]) -> None:
    want = {"action": want} if isinstance(want, str) else want
    unknown = set(want) - {"action", "symbol", "forces", "reason", "no_reason", "reasons", "changed", "ids",
                           "id_prefixes", "after"}
    assert not unknown, f"case error: unknown expectation keys {unknown}"
    where = f"{change.address} ({change.action.word}, reasons {change.reasons})"
    assert want["action"] in WORDS, f"case error: unknown action {want['action']!r}"
    assert change.action.word == want["action"], where
    if "symbol" in want:
        assert change.action.value == want["symbol"], where
    assert change.forces_replacement == want.get("forces", []), where
    if "reason" in want:
        assert any(want["reason"] in r for r in change.reasons), f"{where}: no reason with {want['reason']!r}"
    if "no_reason" in want:
        assert not any(want["no_reason"] in r for r in change.reasons), f"{where}: has {want['no_reason']!r}"
    if "reasons" in want:
        assert change.reasons == want["reasons"], where
    if "changed" in want:
        assert change.changed_keys == want["changed"], where
    if "ids" in want:
        assert change.ids == want["ids"], where
    if "id_prefixes" in want:
        assert len(change.ids) == len(want["id_prefixes"]), where
        assert all(i.startswith(p) for i, p in zip(change.ids, want["id_prefixes"])), f"{where}: ids {change.ids}"
    if "after" in want:
        assert want["after"] is None, "case error: only \"after\": null is checked"
        assert change.after is None, where
    elif change.action is not Action.DELETE:
        assert change.after is not None, where


def check_order(plan: Plan, pairs: list[str]) -> None:
    graph = build_graph(plan)
    for pair in pairs:
        if "<" not in pair:
            step = Step(*pair.split(" ", 1))
            assert step in graph, f"no step {step} in {sorted(map(str, graph.nodes))}"
            continue
        first, second = (Step(*side.strip().split(" ", 1)) for side in pair.split("<"))
        for step in (first, second):
            assert step in graph, f"no step {step} in {sorted(map(str, graph.nodes))}"
        assert nx.has_path(graph, first, second), f"{first} does not run before {second}"


def check_plan(plan: Plan, case: dict[str, Any]) -> None:
    by_address: dict[str, list] = defaultdict(list)
    for change in plan.changes:
        by_address[change.address].append(change)
    expect = case.get("expect", {})
    for address, want in expect.items():
        wants = want if isinstance(want, list) else [want]
        got = by_address.get(address, [])
        assert len(got) == len(wants), f"{address}: {len(got)} changes planned, {len(wants)} expected: {got}"
        for change, w in zip(got, wants):
            check_change(change, w)
    for address, changes in by_address.items():
        if address not in expect:
            for change in changes:
                assert change.action is Action.NOOP, f"unexpected {change.action.word} of {address}: {change.reasons}"
    if "count" in case:
        assert len(plan.changes) == case["count"], [c.address for c in plan.changes]
    if "summary" in case:
        assert plan.summary() == case["summary"]
    check_order(plan, case.get("order", []))


def load_cases() -> list:
    params = []
    for path in sorted(CASES.glob("*.json")):
        case = json.loads(path.read_text())
        marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if "xfail" in case else []
        params.append(pytest.param(case, id=path.stem, marks=marks))
    return params


@pytest.mark.parametrize("case", load_cases())
def test_plan_case(case: dict[str, Any]) -> None:
    plan = plan_for(case)
    check_plan(plan, case)


# -- properties of every plan, and of the harness itself ------------------------------------


def test_every_case_is_described_and_uses_known_keys() -> None:
    known = {"description", "world", "apps", "change", "world_content", "content", "state", "host",
             "add_containers", "add_images", "destroy", "expect", "count", "summary", "order", "xfail",
             "state_moves", "forgotten", "world_secret_values", "secret_values", "secret_sources"}
    cases = list(CASES.glob("*.json"))
    assert len(cases) >= 30
    for path in cases:
        case = json.loads(path.read_text())
        assert case.get("description"), path.name
        assert set(case) <= known, (path.name, set(case) - known)
        assert "apps" not in case or "change" not in case, path.name


@pytest.mark.parametrize("case", [p for p in load_cases() if not p.marks])
def test_plans_are_sorted_and_survive_a_json_round_trip(case: dict[str, Any]) -> None:
    plan = plan_for(case)
    keys = [Address.parse(c.address).sort_key() for c in plan.changes]
    assert keys == sorted(keys)
    assert Plan.model_validate_json(plan.model_dump_json()) == plan


WORLD = {"web": {"build": "/srv/web", "host_port": 8000, "replicas": 2},
         "api": {"image": "vllm/vllm-openai:v0.5.0", "host_port": 9000}}


def test_the_applied_world_is_what_apply_records() -> None:
    """applied() must agree with planner.resources, or every case would test a fiction."""
    apps = configs(WORLD)
    world = applied(apps, hashes_for(apps, {}), {"local"})
    web0 = world.resources["app.web.container[0]@local"]
    assert web0.attributes["host_port"] == 8000 and web0.attributes["image"].startswith("berth-demo-web:")
    assert world.resources["app.web.container[1]@local"].attributes["host_port"] == 8001
    (obs,) = world.observed().values()
    assert {c.labels[LABEL_ADDRESS] for c in obs.containers} == {
        "app.web.container[0]@local", "app.web.container[1]@local", "app.api.container[0]@local"}
    assert obs.image_for_ref("vllm/vllm-openai:v0.5.0") is not None


@pytest.mark.parametrize("wrong", [
    {"expect": {"app.web.container[0]@local": "update"}},  # it is a no-op
    {"expect": {"app.web.container[5]@local": "create"}},  # no such change
    {"expect": {"app.web.image@local": {"action": "no-op", "forces": ["content_hash"]}}},
    {"count": 4},
    {"summary": {"add": 1, "change": 0, "destroy": 0}},
    {"change": {"web": {"env": {"A": "1"}}}},  # a replace nobody expected
    {"order": ["wait app.web.container[0]@local < create app.web.container[1]@local"]},
])
def test_the_harness_rejects_a_wrong_expectation(wrong: dict[str, Any]) -> None:
    case = {"world": WORLD, **wrong}
    if "order" in wrong:
        case["change"] = {"web": {"env": {"A": "1"}}}
        case["expect"] = {f"app.web.container[{i}]@local": "replace" for i in (0, 1)}
    with pytest.raises(AssertionError) as caught:
        check_plan(plan_for(case), case)
    assert "case error" not in str(caught.value)


def test_a_fresh_plan_has_no_lineage_and_an_applied_one_keeps_it() -> None:
    fresh = plan_for({"apps": WORLD})
    assert fresh.lineage is None and fresh.serial == 0
    again = plan_for({"world": WORLD})
    assert again.lineage == LINEAGE and again.serial == 1 and not again.has_changes
    assert plan_for({"world": WORLD, "destroy": True}).destroy


def test_changed_keys_of_an_update_name_only_what_changed() -> None:
    plan = plan_for({"world": WORLD, "change": {"api": {"readiness": "/health", "cpus": 2.0}}})
    (change,) = plan.actions
    assert change.address == "app.api.container[0]@local"
    assert change.changed_keys == ["cpus", "readiness"]


def test_a_rebuilt_image_prunes_the_old_tag_not_the_new_one() -> None:
    plan = plan_for({"world": WORLD, "content": {"/srv/web": "v2"}})
    image = next(c for c in plan.changes if c.address == "app.web.image@local")
    assert image.action is Action.CREATE_THEN_DELETE
    assert image.ids == [image.before["tag"]] and image.before["tag"] != image.after["tag"]
    web0 = next(c for c in plan.changes if c.address == "app.web.container[0]@local")
    assert web0.after["image"] == image.after["tag"]


def test_every_action_word_is_covered_by_some_case() -> None:
    seen = set()
    for param in load_cases():
        plan = plan_for(param.values[0])
        seen |= {(c.type, c.action.value) for c in plan.changes}
    assert seen >= {("image", a.value) for a in Action if a is not Action.REPLACE} | {
        ("container", a.value) for a in Action if a is not Action.CREATE_THEN_DELETE}
