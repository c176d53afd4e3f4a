"""What docker-py is given and what it answers, as pure functions: a ContainerSpec as
create and host-config arguments, list answers as observed values, refs split, archives.

No engine is called here (docker.types is loaded only when a spec needs it), so the
translations are tested on plain data.
"""

from __future__ import annotations

from typing import Any, Callable

from providers.types import ContainerSpec, ObservedContainer, ObservedImage, ObservedVolume, SecretParts

STOP_TIMEOUT = 10  # seconds a container gets to exit on SIGTERM before it is killed
CPU_PERIOD = 100_000


def host_config_args(spec: ContainerSpec, secret_path: Callable[[SecretParts], str]) -> dict[str, Any]:
    """APIClient.create_host_config's arguments for spec; secret_path maps a secret's
    parts to its file on the host (asked only when the spec mounts secrets)."""
    host_network = spec.network_mode == "host"
    return dict(
        port_bindings=None if host_network else {spec.port: spec.host_port},
        network_mode=spec.network_mode,
        sysctls=spec.sysctls or None,
        extra_hosts=spec.extra_hosts or None,
        restart_policy={"Name": spec.restart, "MaximumRetryCount": 0},
        init=True,  # forwards SIGTERM to the server and reaps zombies
        mounts=mounts(spec, secret_path),
        shm_size=spec.shm_size,
        ipc_mode=spec.ipc_mode,
        ulimits=ulimits(spec),
        **limits(spec),
        **devices(spec),
    )


def create_args(spec: ContainerSpec, host_config: dict) -> dict[str, Any]:
    """APIClient.create_container's arguments for spec, with its host config."""
    env = spec.env | ({"NVIDIA_VISIBLE_DEVICES": ",".join(spec.gpus)} if spec.gpus else {})
    return dict(
        image=spec.image, name=spec.name, command=list(spec.command) if spec.command else None,
        environment=env | spec.secret_env, labels=spec.labels,
        ports=None if spec.network_mode == "host" else [spec.port],
        host_config=host_config, stop_timeout=spec.stop_timeout or STOP_TIMEOUT,
        entrypoint=list(spec.entrypoint) if spec.entrypoint is not None else None,
    )


def ulimits(spec: ContainerSpec) -> list[Any] | None:
    """`--ulimit NAME=N` for each: soft and hard alike (-1: unlimited)."""
    if not spec.ulimits:
        return None
    from docker.types import Ulimit

    return [Ulimit(name=name, soft=value, hard=value) for name, value in spec.ulimits.items()]


def mounts(spec: ContainerSpec, secret_path: Callable[[SecretParts], str]) -> list[Any] | None:
    """Read-only bind mounts of the secret files, the app's volumes (named ones as
    Docker volumes), then the spec's host paths. A
    Mount, not a -v bind: a missing source is an error, where -v would quietly
    create an empty directory there."""
    if not spec.secret_mounts and not spec.host_mounts and not spec.volumes:
        return None
    from docker.types import Mount

    found = [Mount(target=m.target, source=secret_path(m.parts), type="bind", read_only=True)
             for m in spec.secret_mounts]
    found += [Mount(target=m.target, source=m.source, type="volume" if m.named else "bind", read_only=m.read_only)
              for m in spec.volumes]
    return found + [Mount(target=m.target, source=m.source, type="bind", read_only=m.read_only)
                    for m in spec.host_mounts]


def devices(spec: ContainerSpec) -> dict[str, Any]:
    """The GPUs placement assigned, as `docker run --gpus '"device=0,1"'` asks for them."""
    if not spec.gpus:
        return {}
    import docker.types

    return {"device_requests": [docker.types.DeviceRequest(
        driver="nvidia", device_ids=list(spec.gpus), capabilities=[["gpu"]])]}


def limits(spec: ContainerSpec) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if spec.memory is not None:
        found |= {"mem_limit": spec.memory, "memswap_limit": -1}
    if spec.cpus is not None:
        found |= {"cpu_period": CPU_PERIOD, "cpu_quota": int(spec.cpus * CPU_PERIOD)}
    return found


def observed_container(c: dict[str, Any]) -> ObservedContainer:
    """A container as /containers/json lists it."""
    return ObservedContainer(
        id=c["Id"],
        name=(c.get("Names") or ["/"])[0].lstrip("/"),
        state=c.get("State", ""),
        image_id=c.get("ImageID", ""),
        labels=c.get("Labels") or {},
        host_ports=tuple(sorted({p["PublicPort"] for p in c.get("Ports") or () if p.get("PublicPort")})),
    )


def observed_image(i: dict[str, Any]) -> ObservedImage:
    """An image as /images/json lists it."""
    return ObservedImage(
        id=i["Id"],
        tags=tuple(t for t in i.get("RepoTags") or () if t != "<none>:<none>"),
        digests=tuple(d for d in i.get("RepoDigests") or () if d != "<none>@<none>"),
        labels=i.get("Labels") or {},
    )


def observed_volume(v: dict[str, Any]) -> ObservedVolume:
    """A volume as /volumes lists it."""
    return ObservedVolume(name=v["Name"], labels=v.get("Labels") or {})


def split_ref(ref: str) -> tuple[str, str | None]:
    """docker-py wants repository and tag (or digest) apart."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    name, _, tag = ref.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return ref, "latest"


def tar_of(files: dict[str, bytes]) -> bytes:
    """An archive of files by absolute path (mode 0600), for put_archive at /."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(content), 0o600
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def observed_limits(host_config: dict[str, Any]) -> dict[str, Any]:
    """A container's limits as berth records them, from its HostConfig: cpus from
    NanoCpus (`docker update --cpus`) or CpuQuota/CpuPeriod (how berth sets them), memory
    in bytes; None where unlimited."""
    nano = host_config.get("NanoCpus") or 0
    quota, period = host_config.get("CpuQuota") or 0, host_config.get("CpuPeriod") or 0
    cpus = nano / 1e9 if nano else (quota / (period or CPU_PERIOD) if quota > 0 else None)
    memory = host_config.get("Memory") or None
    return {"cpus": cpus, "memory": memory}
