"""Where a result came from: the code's commit and the device, named in every record and artefact."""
from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from pathlib import Path

import torch

from . import AktError

#: what runs and publishing write inside the checkout: results, not code, so changes there never
#: make a commit ``-dirty`` (a run that stores rows in a tracked CSV would otherwise mark its own
#: later rows as made from uncommitted code)
OUTPUT_PATHS = ("data/results", "data/reruns", "data/weights")


def code_digest() -> str:
    """SHA-256 of the package's source (every ``akt_core/**/*.py``, by relative path and content): the
    same on two machines exactly when they run the same code, with or without git."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def git_commit(root: Path | None = None) -> str:
    """The checkout's commit (``-dirty`` with uncommitted changes to anything but ``OUTPUT_PATHS``);
    ``$AKT_GIT_COMMIT`` where the code runs from a copy without git history (a GPU machine that
    receives only the working tree)."""
    if os.environ.get("AKT_GIT_COMMIT"):
        return os.environ["AKT_GIT_COMMIT"]
    try:
        root = root or Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){p}" for p in OUTPUT_PATHS)], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def from_dirty_tree(commit) -> bool:
    """Whether a row or model names code that was never committed (``-dirty``, or no commit at all):
    such results are never published or shown; they are recomputed."""
    return not commit or str(commit) in ("unknown", "nan") or str(commit).endswith("-dirty")


def device_name(device: torch.device, bf16: bool = False) -> str:
    """The device in words and its arithmetic: on a GPU float32 with TF32 convolutions (PyTorch's
    default for cuDNN) or bf16 autocast, on a CPU float32 (unnamed, as in every earlier row) or bf16
    autocast. TF32 and bf16 change results beyond float32 rounding."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device) + (", bf16 autocast" if bf16 else ", fp32/tf32")
    # float results differ between CPUs that torch runs with different kernels (AVX2, AVX512): name them
    kernels = torch.backends.cpu.get_cpu_capability()
    name, family = platform.processor() or platform.machine(), ""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines()[:30] if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        name = info.get("model name", name)
        if "cpu family" in info and "model" in info:
            family = f"family {info['cpu family']} model {info['model']}, "
    except OSError:
        pass
    return f"cpu: {name} ({family}{kernels}) x{torch.get_num_threads()} threads" + (", bf16 autocast" if bf16 else "")


def machine_kind(device: str) -> str:
    """``device_name``'s words without the thread count: two runs of one kind (and arithmetic) compute
    the same floats."""
    return re.sub(r" x\d+ threads?", "", str(device))


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise AktError(f"unknown device {device!r}; valid choices: auto, cpu, cuda, cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AktError(f"device {device!r} requested but no CUDA GPU is available; use --device cpu")
    return torch.device(device)
