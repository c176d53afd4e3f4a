"""Per kind, what each stored attribute's change costs: a new container (replace), a
live change (update), a restart, or nothing on the host (berth): one table per kind.

A table over the stored dicts rather than a pydantic model per kind: state holds these
attributes as plain dicts whose absent keys matter (a key left out keeps an old
container's config-hash), so diff, apply and the hashes read the dicts as they are and
ask the table which keys to compare. Field order is the order plans list them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from state.address import ResourceKind


class ChangeClass(StrEnum):
    REPLACE = "replace"  # only a new container has it
    UPDATE = "update"  # changed on the running container (docker update / rename, a routes reload)
    RESTART = "restart"  # the container is restarted to read it (a mounted secret's value)
    BERTH = "berth"  # only berth reads it (probes, ordering): nothing on the host changes
    RECORDED = "recorded"  # follows from other fields (a name from the stack, an image's hash)


R, U, S, B, N = ChangeClass.REPLACE, ChangeClass.UPDATE, ChangeClass.RESTART, ChangeClass.BERTH, ChangeClass.RECORDED


@dataclass(frozen=True)
class Field:
    change: ChangeClass
    optional: bool = False  # present only when set; left out of the config hash when absent


@dataclass(frozen=True)
class AttributeModel:
    kind: ResourceKind
    fields: dict[str, Field]

    def keys(self, *classes: ChangeClass) -> tuple[str, ...]:
        return tuple(k for k, f in self.fields.items() if f.change in classes)

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(k for k, f in self.fields.items() if f.optional)

    def view(self, attrs: dict[str, Any], *classes: ChangeClass) -> dict[str, Any]:
        """attrs' values of the given classes, optional keys only when set."""
        return {k: attrs.get(k) for k in self.keys(*classes) if not self.fields[k].optional or attrs.get(k)}

    def changed(self, before: dict[str, Any], after: dict[str, Any], *classes: ChangeClass) -> list[str]:
        return [k for k in self.keys(*classes) if before.get(k) != after.get(k)]


# An app's replica (planner.resources.container_attributes). The mount set and the env
# mapping of secrets replace it, and so do the weights it mounts ({mount, key} each); their values restart it (or replace it, when a secret is
# also in its env: diff decides). gpus: the device indexes placement gave it. Clearing a
# limit (cpus, memory) needs a new container too: diff checks that. max_unavailable:
# how many of the app's replicas a replace may take down at once (absent: 1).
CONTAINER = AttributeModel(ResourceKind.CONTAINER, {
    "name": Field(U), "image": Field(R), "command": Field(R), "env": Field(R), "port": Field(R),
    "host_port": Field(R), "restart": Field(U), "cpus": Field(U), "memory": Field(U),
    "readiness": Field(B), "liveness": Field(B), "readiness_timeout": Field(B), "depends_on": Field(B),
    "max_unavailable": Field(B, optional=True), "port_range": Field(B, optional=True),
    "secrets": Field(R, optional=True), "secret_env": Field(R, optional=True),
    "secret_versions": Field(S, optional=True), "gpus": Field(R, optional=True),
    "volumes": Field(R, optional=True), "shm_size": Field(R, optional=True), "ipc": Field(R, optional=True),
    "ulimits": Field(R, optional=True), "entrypoint": Field(R, optional=True),
    "stop_timeout": Field(R, optional=True),
    "weights": Field(R, optional=True),
})

# A weights source's entry in the host's cache (planner.weights.cache.attributes): the
# request (source, patterns) picks the entry; the mount is the container's business.
WEIGHTS = AttributeModel(ResourceKind.WEIGHTS, {
    "source": Field(R), "kind": Field(N), "mount": Field(B), "allow": Field(R), "ignore": Field(R),
    "secret": Field(B), "key": Field(R),
})

# A host's gateway (planner.serving.gateway.attributes): routes reload live.
GATEWAY = AttributeModel(ResourceKind.GATEWAY, {
    "name": Field(N), "image": Field(R), "content_hash": Field(N), "port": Field(R), "admin_port": Field(R),
    "network": Field(R), "routes": Field(U), "upstreams": Field(U),
    # API keys: their keyed digests (reloaded live: the key check rereads its file), and
    # the hash of the key check's program, which runs in the container.
    "api_keys": Field(U, optional=True), "auth": Field(R, optional=True),
    "drain_timeout": Field(U, optional=True),  # berth's drain wait, and the routes' stream_close_delay
    "tls": Field(U, optional=True),  # {mode, names}: certificates for these names, loaded live
})

# A host's liveness watcher (planner.serving.watcher.attributes). Every attribute replaces
# it: it is tiny, stateless and starts in a second, so a new container is simpler than a
# reload protocol. Its failure counts start over; a replica it restarted before is listed
# by `berth status` only from the new watcher on.
WATCHER = AttributeModel(ResourceKind.WATCHER, {
    "name": Field(N), "image": Field(R), "socket": Field(R), "script_hash": Field(R), "targets": Field(R),
})
