"""The Plan: per resource, what apply would do and why. A value, serialisable, so that
a plan can be saved, shown as text or JSON, and applied later exactly as shown.

Action follows Terraform's symbols; `reasons` and `forces_replacement` are for display
only: apply reads the action.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from state.address import Address, ResourceKind

PLAN_FORMAT = 1


class Action(StrEnum):
    NOOP = ""
    CREATE = "+"
    UPDATE = "~"
    DELETE = "-"
    REPLACE = "-/+"  # delete, then create: the name and the host port are taken until then
    CREATE_THEN_DELETE = "+/-"  # build the new image, then remove the old one

    @property
    def is_replace(self) -> bool:
        return self in (Action.REPLACE, Action.CREATE_THEN_DELETE)

    @property
    def word(self) -> str:
        """The name used in JSON and summaries."""
        return "replace" if self.is_replace else {"": "no-op", "+": "create", "~": "update", "-": "delete"}[self.value]


class Change(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: Address  # written as its text in saved plans and --json
    type: ResourceKind
    action: Action
    before: dict[str, Any] | None = None  # attributes in state (or observed), None when new
    after: dict[str, Any] | None = None  # desired attributes, None when deleted
    ids: list[str] = Field(default_factory=list)  # engine IDs this change acts on (old side)
    reasons: list[str] = Field(default_factory=list)
    forces_replacement: list[str] = Field(default_factory=list)

    @property
    def changed_keys(self) -> list[str]:
        before, after = self.before or {}, self.after or {}
        return [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    format: int = PLAN_FORMAT
    stack: str
    lineage: str | None = None  # of the state the plan was made from; None: no state yet
    serial: int = 0
    destroy: bool = False
    # Read by nothing, but part of the saved-plan format (`plan --out`): kept so that
    # files stay as they were.
    created_at: float = Field(default_factory=time.time)
    changes: list[Change] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    # Per app read from a platform's own format (Cerebrium, Truss): its origin and the
    # values berth resolved from it (planner/sources.py). For display only.
    apps: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @property
    def actions(self) -> list[Change]:
        """Changes that touch a host (what the plan shows and apply walks)."""
        return [c for c in self.changes if c.action is not Action.NOOP]

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    def summary(self) -> dict[str, int]:
        counts = {"add": 0, "change": 0, "destroy": 0}
        for change in self.actions:
            if change.action in (Action.CREATE,) or change.action.is_replace:
                counts["add"] += 1
            if change.action in (Action.DELETE,) or change.action.is_replace:
                counts["destroy"] += 1
            if change.action is Action.UPDATE:
                counts["change"] += 1
        return counts
