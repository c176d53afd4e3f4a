"""GPU inventory: what nvidia-smi reports on a host, as plain values, and the reading of
its answer (the command runs over the host's Transport, once per run).

The parser is tested on text alone. A host without nvidia-smi has none.
"""

from __future__ import annotations

from dataclasses import dataclass

NVIDIA_SMI_QUERY = "nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits"


@dataclass(frozen=True)
class Gpu:
    index: str  # as Docker's device_ids and NVIDIA_VISIBLE_DEVICES take it
    name: str  # "NVIDIA H100 80GB HBM3"
    memory_mib: int
    uuid: str


def parse_nvidia_smi(text: str) -> tuple[Gpu, ...]:
    """Lines of `index, name, memory.total, uuid`; blank lines ignored."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        index, *name, memory, uuid = fields
        gpus.append(Gpu(index=index, name=", ".join(name), memory_mib=int(float(memory)) if memory.replace(".", "").isdigit() else 0, uuid=uuid))
    return tuple(gpus)


def read_gpus(host: str, status: int, out: str, err: str) -> tuple[Gpu, ...]:
    """The fact from NVIDIA_SMI_QUERY's (exit status, stdout, stderr) on a host: none
    when nvidia-smi is not there (127, as a shell says), else its answer parsed."""
    from providers.types import ProviderError

    if status == 127:  # command not found: a host without NVIDIA's driver has no GPUs
        return ()
    if status != 0:
        raise ProviderError(f"host {host}: nvidia-smi failed (exit {status}): {(err or out).strip()}")
    try:
        return parse_nvidia_smi(out)
    except ValueError as error:  # not the CSV asked for: say so, never a traceback
        raise ProviderError(f"host {host}: cannot read nvidia-smi's answer: {error}") from None
