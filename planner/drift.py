"""Drift: what the hosts show against what state records, for `berth refresh`.

Pure: state and observations in, the refreshed state and a list of findings out. Refresh
writes only what is there: a resource gone from its host is forgotten, an image reference
that now names another image gets that image's ID. It never adopts or changes anything
else; the next plan does that and shows it first.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.types import LABEL_ADDRESS, LABEL_STACK, Observation
from state.model import State


@dataclass(frozen=True)
class Finding:
    address: str
    message: str
    writes: bool  # whether refresh changes state for it (else it is for information)


def drift(state: State, observed: dict[str, Observation]) -> tuple[State, list[Finding]]:
    findings: list[Finding] = []
    resources = dict(state.resources)
    containers = {c.id: (host, c) for host, obs in observed.items() for c in obs.containers}
    for key in state.sorted_addresses():
        resource = state.resources[key]
        obs = observed.get(resource.host)
        if obs is None:
            continue  # a host this run did not read
        if resource.type in ("container", "gateway", "watcher"):  # each is a container on its host
            found = containers.get(resource.id)
            if found is None:
                findings.append(Finding(key, f"container {resource.id[:12]} no longer exists on host "
                                             f"{resource.host}: removed from state", True))
                del resources[key]
                continue
            _, container = found
            if container.state != "running":
                findings.append(Finding(key, f"container is {container.state or 'not running'} "
                                             "(the next apply replaces it)", False))
            if resource.type == "container":
                findings += [Finding(key, f"{reason}; the next apply puts it back", False)
                             for reason in _renamed_or_updated(resource.attributes, container)]
            label = container.labels.get(LABEL_ADDRESS)
            if label and label != key:
                findings.append(Finding(key, f"container is labelled {label} (moved with state mv); "
                                             "matched by its container ID", False))
        elif resource.type == "volume":
            if resource.id not in {v.name for v in obs.volumes}:
                findings.append(Finding(key, f"volume {resource.id} no longer exists on host {resource.host}: "
                                             "removed from state (the next apply makes it again, empty)", True))
                del resources[key]
        else:
            ref = resource.attributes.get("ref")
            if any(i.id == resource.id for i in obs.images):
                if ref:
                    current = obs.image_for_ref(ref)
                    if current is not None and current.id != resource.id:
                        findings.append(Finding(key, f"{ref} now names image {current.id[7:19]} "
                                                     f"(was {resource.id[7:19]})", True))
                        resources[key] = resource.model_copy(update={"id": current.id})
                continue
            current = obs.image_for_ref(ref) if ref else None
            if current is not None:
                findings.append(Finding(key, f"{ref} now names image {current.id[7:19]} "
                                             f"(image {resource.id[7:19]} is gone)", True))
                resources[key] = resource.model_copy(update={"id": current.id})
            else:
                findings.append(Finding(key, f"image {resource.id[7:19]} is no longer on host "
                                             f"{resource.host}: removed from state", True))
                del resources[key]
    recorded = {r.id for r in state.resources.values()} | set(state.forgotten)
    for host, obs in observed.items():
        for container in obs.containers:
            if container.id in recorded or container.labels.get(LABEL_STACK) != state.stack:
                continue
            address = container.labels.get(LABEL_ADDRESS, "?")
            findings.append(Finding(address, f"container {container.name} on host {host} is labelled with this "
                                             "stack but not in state (the next plan adopts or removes it)", False))
    return state.model_copy(update={"resources": resources}), findings


def _renamed_or_updated(recorded: dict, container) -> list[str]:  # noqa: ANN001
    """`docker rename` and `docker update` behind berth's back, as diff sees them."""
    from planner.diff import host_drift

    return [reason.split(" (")[0] for reason in host_drift(recorded, container)[1]]
