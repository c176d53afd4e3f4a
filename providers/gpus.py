"""GPU inventory: what nvidia-smi reports on a host, as plain values.

The fact is read with one command per host (cached by the provider for the run) and
parsed here, so the parser is tested on text alone. A host without nvidia-smi has none.
"""

from __future__ import annotations

import shutil
import subprocess
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


def local_gpus() -> tuple[Gpu, ...]:
    """The GPUs of the machine berth runs on."""
    if shutil.which("nvidia-smi") is None:
        return ()
    result = subprocess.run(NVIDIA_SMI_QUERY.split(), capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        from providers.types import ProviderError

        raise ProviderError(f"host local: nvidia-smi failed (exit {result.returncode}): {result.stderr.strip()}")
    try:
        return parse_nvidia_smi(result.stdout)
    except ValueError as err:
        from providers.types import ProviderError

        raise ProviderError(f"host local: cannot read nvidia-smi's answer: {err}") from None
