"""The JSON documents berth prints, as models: the one statement of their shape.

schemas/NAME.schema.json are generated from these (scripts/schemas.py) and a test keeps
the files in step with them; the integration tests validate what the commands really print
against them. Tables of attributes (a change's before and after, a resource's attributes,
a platform app's entry) are open: their keys are those of state and the plan, documented
in the README. Everything else is closed: a new key is a new field here first.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Time = str  # RFC 3339 with its zone ("2026-12-01T10:00:00Z")


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Change(_Document):
    address: str
    type: str
    action: Literal["create", "update", "delete", "replace", "no-op"]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reasons: list[str]
    forces_replacement: list[str]
    # a replace's order: the new one beside the old one first, or the old one stopped first
    replace_order: Literal["start-first", "stop-first"] | None


class Summary(_Document):
    add: int
    change: int
    destroy: int


class PlanDocument(_Document):
    """`berth plan --json`, `berth show PLANFILE --json`."""

    format_version: Literal[1]
    stack: str
    lineage: str | None
    serial: int
    destroy: bool
    changes: list[Change]
    summary: Summary
    warnings: list[str]
    kept: list[str]
    apps: dict[str, dict[str, Any]]


class WatcherRestart(_Document):
    time: str
    reason: str


class ReplicaStatus(_Document):
    app: str
    address: str
    host: str
    container: str
    state: str
    readiness: str
    liveness: str
    image: str
    since: Time | None
    restarts: int
    tainted: bool
    watcher_restarts: int
    last_watcher_restart: WatcherRestart | None
    url: str  # http://HOST-ADDRESS:PORT where it answers; "" when it publishes nothing
    healthy: bool


class StatusDocument(_Document):
    """`berth status --json`."""

    format_version: Literal[1]
    stack: str
    environment: str | None
    healthy: bool
    replicas: list[ReplicaStatus]


class Resource(_Document):
    address: str
    type: str
    host: str
    id: str
    status: str
    attributes: dict[str, Any]


class StateDocument(_Document):
    """`berth show --json` (the state, secrets as "(sensitive value)")."""

    format_version: Literal[1]
    stack: str | None
    serial: int
    lineage: str | None
    resources: list[Resource]


class ReplicaEndpoint(_Document):
    address: str
    host: str
    url: str


class AppEndpoints(_Document):
    app: str
    hosts: list[str]
    port: int | None
    replicas: list[ReplicaEndpoint]
    gateway: list[str]
    predict: list[str]


class OutputDocument(_Document):
    """`berth output --json`."""

    format_version: Literal[1]
    stack: str
    apps: list[AppEndpoints]
    # By host: the file holding the root of its gateway's own CA (tls = "internal"), for
    # clients to trust (curl --cacert PATH); empty when no gateway serves HTTPS.
    gateway_ca: dict[str, str]


class Version(_Document):
    serial: int
    time: Time | None
    who: str
    note: str
    config: str | None
    added: list[str]
    removed: list[str]
    changed: list[str]


class RunEntry(_Document):
    run: int
    serials: list[int]  # [first, last]
    started: Time | None
    time: Time | None
    who: str
    note: str
    config: str | None
    added: list[str]
    removed: list[str]
    changed: list[str]


class HistoryDocument(_Document):
    """`berth state history --json`: the runs, and every version."""

    format_version: Literal[1]
    stack: str | None
    runs: list[RunEntry]
    versions: list[Version]


class Problem(_Document):
    message: str
    file: str | None
    key: str | None
    line: int | None
    detail: str | None
    severity: Literal["error", "warning"]


class ValidateDocument(_Document):
    """`berth validate --json`: stack, file, apps, hosts, secrets and notes when valid."""

    format_version: Literal[1]
    valid: bool
    stack: str | None = None
    file: str | None = None
    apps: list[str] | None = None
    hosts: list[str] | None = None
    secrets: list[str] | None = None
    notes: list[str] | None = None
    errors: list[Problem]


class Gpu(_Document):
    index: str  # as Docker's device_ids take it
    name: str
    memory_mib: int
    uuid: str


class HostFacts(_Document):
    host: str
    address: str | None
    docker: str | None = None
    architecture: str | None = None  # the engine's, as image platforms name it: "amd64", "arm64"
    gpus: list[Gpu] | None = None
    builder: str | None = None  # what builds images for this host ("BuildKit (built into ...)", "on local, image sent")
    build_on: Literal["local", "host"] | None = None
    error: str | None = None


class HostsDocument(_Document):
    """`berth hosts --json`."""

    format_version: Literal[1]
    hosts: list[HostFacts]


class ApplyEvent(_Document):
    """One line of `berth apply --json`."""

    format_version: Literal[1]
    event: Literal["plan", "started", "progress", "waiting", "finished", "failed", "skipped", "not_started", "summary"]
    time: Time
    plan: PlanDocument | None = None
    step: str | None = None
    address: str | None = None
    elapsed: float | None = None
    message: str | None = None
    detail: list[str] | None = None
    ok: bool | None = None
    interrupted: bool | None = None
    added: int | None = None
    changed: int | None = None
    destroyed: int | None = None


DOCUMENTS: dict[str, type[BaseModel]] = {
    "plan": PlanDocument, "status": StatusDocument, "state": StateDocument, "output": OutputDocument,
    "history": HistoryDocument, "validate": ValidateDocument, "hosts": HostsDocument, "apply-event": ApplyEvent,
}


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of document `name`, as schemas/NAME.schema.json holds it."""
    found = DOCUMENTS[name].model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"berth/{name}.schema.json"} | found
