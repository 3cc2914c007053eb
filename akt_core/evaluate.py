"""Batched prediction, accuracy, and crafting an attack over a whole split.

The black-box protocol of Tables 2-10 (Sec. 3.2): adversarial test images are crafted once on a
*source* model and every *target* model is scored on the same images. ``graph`` decides which
sources and targets a table needs and turns the accuracies into records.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from .data import to_device, to_float

#: Layout of images and weights: channels-last (NHWC), which cuDNN's convolutions prefer on the GPU.
#: It changes no value on the CPU; ``benchmarks/gpu.py`` measures it against NCHW on the GPU.
MEMORY_FORMAT = torch.channels_last


def layout(t: torch.Tensor | nn.Module):
    """``t`` (a batch of images or a model) in ``MEMORY_FORMAT``."""
    if isinstance(t, nn.Module):
        return t.to(memory_format=MEMORY_FORMAT)
    return t.contiguous(memory_format=MEMORY_FORMAT)


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast where ``bf16`` (on a GPU or the CPU); float32 otherwise."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, batch_size: int = 500, bf16: bool = False) -> torch.Tensor:
    """Eval-mode logits of ``x`` (uint8 or float in [0, 1]) in batches; float32 on ``x``'s device."""
    was_training = model.training
    model.eval()
    out = []
    device = next(model.parameters()).device
    for i in range(0, len(x), batch_size):
        xb = to_device(x[i:i + batch_size], device)
        xb = to_float(xb) if xb.dtype == torch.uint8 else xb
        with autocast(device, bf16):
            out.append(model(layout(xb)).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500,
            bf16: bool = False) -> int:
    """How many of ``x`` the model classifies as ``y``."""
    return int((logits(model, x, batch_size, bf16).argmax(1).cpu() == y.cpu()).sum())


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500,
             bf16: bool = False) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * correct(model, x, y, batch_size, bf16) / max(len(y), 1)


def craft(attack: Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor],
          source: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
          batch_size: int = 500, progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """``attack`` applied to all of ``x`` (uint8 or float) on ``source``, in batches; float32 in [0, 1]."""
    device = next(source.parameters()).device
    out = []
    for i in range(0, len(x), batch_size):
        xb = to_device(x[i:i + batch_size], device)
        xb = to_float(xb) if xb.dtype == torch.uint8 else xb
        out.append(attack(source, layout(xb),
                          to_device(y[i:i + batch_size], device), eps))
        if progress:
            progress(len(xb))
    return torch.cat(out)
