"""Saved plans: `berth plan --out FILE` writes one, `berth apply FILE` applies exactly it.

A saved plan holds the Plan (which carries the lineage and serial of the state it was
made from), the desired configuration it was made from (secrets as digests only, see
planner.recorded) and the targets it was narrowed to. It is refused for a state of
another lineage and for one whose serial moved since: anything that wrote state in
between (an apply, refresh, import, state rm/mv/push) makes it stale.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.plan import Plan
from state.errors import StateError
from state.model import State

KIND = "berth-saved-plan"
VERSION = 1


class SavedPlanError(StateError):
    """A saved plan that cannot be read, or does not belong to the state at hand."""


class SavedPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str = KIND
    version: int = VERSION
    plan: Plan
    config: dict[str, Any]  # planner.recorded.recorded_config of the stack it was made from
    targets: list[str] = Field(default_factory=list)
    replace: list[str] = Field(default_factory=list)

    @property
    def recorded(self) -> dict[str, Any] | None:
        """The configuration applying it records: none for a targeted plan (it applies
        part of the configuration; see planner.pipeline.config_to_record)."""
        return None if self.targets else self.config

    def save(self, path: str | os.PathLike[str]) -> None:
        """Written atomically (temporary file, then rename): never half a plan."""
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=".berth-plan-", dir=target.parent if str(target.parent) else ".")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.model_dump_json(indent=2))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SavedPlan:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise SavedPlanError(f"cannot read saved plan {path}: {err.strerror or err}") from None
        try:
            raw = json.loads(text)
        except ValueError:
            raise SavedPlanError(f"{path} is not a saved plan (not JSON); make one with `berth plan --out {path}`") from None
        if not isinstance(raw, dict) or raw.get("kind") != KIND:
            raise SavedPlanError(f"{path} is not a saved plan; make one with `berth plan --out {path}`")
        if raw.get("version") != VERSION:
            raise SavedPlanError(f"saved plan {path} has format version {raw.get('version')}; this berth reads {VERSION}")
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise SavedPlanError(f"saved plan {path} is damaged: {err.errors()[0]['msg']} at "
                                 f"{'.'.join(map(str, err.errors()[0]['loc']))}") from None

    def check(self, state: State | None, where: str) -> None:
        """Refuse unless `state` is the very state the plan was made from."""
        plan = self.plan
        current_serial = state.serial if state else 0
        if plan.lineage is None:
            if current_serial:
                raise SavedPlanError(
                    f"stale plan: state changed since the plan was made (there was no state then; "
                    f"{where} is at serial {current_serial} now). Make a new plan with `berth plan --out`.")
            return
        if state is None or state.lineage != plan.lineage:
            now = f"lineage {state.lineage}" if state else "no state"
            raise SavedPlanError(
                f"saved plan does not match this state: it was made for lineage {plan.lineage}, "
                f"{where} holds {now}")
        if state.serial != plan.serial:
            raise SavedPlanError(
                f"stale plan: state changed since the plan was made (serial {plan.serial} then, "
                f"{state.serial} now). Make a new plan with `berth plan --out`.")
