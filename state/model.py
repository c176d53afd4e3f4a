"""The state model: what berth made, per resource address.

A State is a plain value; `store` persists it and `planner.apply` replaces resources in
it as steps finish. It holds only what berth itself set (never what the engine adds),
so diffing against it cannot produce perpetual changes.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from state.address import Address, ResourceKind

FORMAT_VERSION = 1

# A resource's id: an image's ID, a container's ID (apps' replicas, the gateway, the
# watcher), a secret file's path (its attributes keep only a keyed digest of the value,
# planner.secrets, never the value).
# created: the container runs but its readiness has not been confirmed yet (a run died
# while waiting); tainted: readiness failed, so the next apply replaces it.
ResourceStatus = Literal["ready", "created", "tainted"]


class ResourceState(BaseModel):
    address: Address  # written as its text; State.resources is keyed by that text
    type: ResourceKind
    host: str
    id: str = ""  # the engine's ID: container ID or image ID
    status: ResourceStatus = "ready"
    attributes: dict[str, Any] = Field(default_factory=dict)


class State(BaseModel):
    version: int = FORMAT_VERSION
    lineage: str = Field(default_factory=lambda: str(uuid.uuid4()))
    serial: int = 0
    stack: str = ""
    resources: dict[str, ResourceState] = Field(default_factory=dict)
    # Engine IDs `state rm` let go of: refresh never claims them again by their labels,
    # so a forgotten container is neither adopted nor deleted by a later apply.
    forgotten: list[str] = Field(default_factory=list)

    def sorted_addresses(self) -> list[str]:
        return sorted(self.resources, key=lambda k: Address.parse(k).sort_key())  # keys: the file's text
