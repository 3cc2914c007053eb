"""CIFAR-style ResNets of depth 6n+2 (He et al. 2016), as the paper uses them (Sec. 3.1).

Three stages of basic blocks with 16, 32 and 64 channels; the shortcut is parameter-free (subsampling
plus zero-padded channels, "option A"), initialisation He-normal and the head global average pooling,
as in the public distillation code the paper's setup matches (bhheo/BSS_distillation; the book's
"Reproduction setup" chapter says why).
Res26 (n=4) is the paper's teacher, Res8 (n=1) its edge student, Res20 and Res14 static sources.

Models take images in [0, 1] and normalise inside (RobustBench's convention), so attacks and
evaluation never need to know a dataset's mean and standard deviation.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import AktError


class Normalize(nn.Module):
    """(x - mean) / std with per-channel constants kept as buffers (they travel with the weights)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a parameter-free shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.pad = planes - in_planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]  # AvgPool2d(kernel 1, stride 2) == subsampling
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad))  # zero channels appended ("DownsampleA")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-(6n+2) for 28x28 or 32x32 inputs in [0, 1]; returns logits."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise AktError(f"ResNet depth {depth!r} is not of the form 6n+2 with n >= 1 "
                           "(valid: 8, 14, 20, 26, 32, ...)")
        if num_classes < 2:
            raise AktError(f"num_classes must be at least 2, got {num_classes}")
        n = (depth - 2) // 6
        self.depth, self.num_classes, self.in_channels = depth, num_classes, in_channels
        self.normalize = Normalize(mean or [0.5] * in_channels, std or [0.5] * in_channels)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        blocks, in_planes = [], widths[0]
        for stage, planes in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.blocks(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


class MultiExitResNet(ResNet):
    """A ResNet-(6n+2) with an exit (classifier) after each of its three stages (NEO-KD's setting).

    Exit ``i`` (1, 2, 3) reads stage ``i``'s output; exit 3 is the plain ResNet's own head, so
    ``forward`` returns the same thing a ``ResNet`` returns and every attack and evaluation treats the
    model as an ordinary classifier. Exits 1 and 2 are small heads of ours (NEO-KD uses SmallCNN and
    MSDNet, not a ResNet): conv3x3 (stride 2, to the last stage's width) - BN - ReLU - global average
    pooling - linear. ``exits(x)`` returns all exits' logits; ``ExitView`` makes one exit a model.
    """

    n_exits = 3

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__(depth, num_classes, in_channels, mean, std, widths)
        self.n_per_stage = (depth - 2) // 6
        self.heads = nn.ModuleList(nn.Sequential(
            nn.Conv2d(w, widths[-1], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[-1]), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], num_classes)) for w in widths[:-1])
        for m in self.heads.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def exits(self, x: torch.Tensor, upto: int | None = None, last_only: bool = False) -> list[torch.Tensor]:
        """Logits of exits 1..``upto`` (default: all), computing only the stages they need; with
        ``last_only`` the heads of the earlier exits are skipped (a device that stops at ``upto``)."""
        upto = self.n_exits if upto is None else upto
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        logits = []
        for stage in range(upto):
            out = self.blocks[stage * self.n_per_stage:(stage + 1) * self.n_per_stage](out)
            if last_only and stage < upto - 1:
                continue
            if stage < self.n_exits - 1:
                logits.append(self.heads[stage](out))
            else:
                logits.append(self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1)))
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.exits(x, last_only=True)[-1]


class ExitView(nn.Module):
    """Exit ``exit`` (1-based) of a ``MultiExitResNet`` as a classifier of its own: the edge model that
    stops there. Shares the parameters; its forward computes only the stages up to that exit."""

    def __init__(self, model: MultiExitResNet, exit: int) -> None:
        super().__init__()
        if not 1 <= exit <= model.n_exits:
            raise AktError(f"exit {exit!r} does not exist; choose one of 1..{model.n_exits}")
        self.model, self.exit = model, exit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.exits(x, upto=self.exit, last_only=True)[-1]

    def path_parameters(self) -> list[nn.Parameter]:
        """The parameters this exit's forward pass uses (its share of the backbone and its head)."""
        m, k = self.model, self.exit
        mods = [m.conv1, m.bn1, m.blocks[:k * m.n_per_stage], m.fc if k == m.n_exits else m.heads[k - 1]]
        return [p for mod in mods for p in mod.parameters()]


def resnet(depth: int, num_classes: int = 10, in_channels: int = 3,
           mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> ResNet:
    """The paper's ResNet-``depth`` (depth = 6n+2). Inputs in [0, 1]; ``mean``/``std`` normalise inside."""
    return ResNet(depth, num_classes, in_channels, mean, std)


def for_dataset(spec, depth: int, multi_exit: bool = False) -> ResNet:
    """A fresh ResNet-``depth`` for a dataset (``data.DatasetSpec``: channels, classes, mean, std),
    multi-exit where the training method needs one."""
    cls = MultiExitResNet if multi_exit else ResNet
    return cls(depth, spec.num_classes, spec.channels, spec.mean, spec.std)


@dataclass(frozen=True)
class ModelCost:
    """What Table 1 reports, measured on our models: parameters, multiply-accumulates, size."""

    depth: int
    params: int
    macs: int
    size_mb: float  # float32 state_dict as torch.save writes it, in MiB

    @property
    def gflops(self) -> float:
        """FLOPs (2 per multiply-accumulate) in units of 1e9."""
        return 2 * self.macs / 1e9


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of a batch of one, by torch's own FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.rand(1, *input_shape, device=next(model.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def model_cost(model: ResNet | ExitView, input_shape: Sequence[int]) -> ModelCost:
    """Parameters, MACs (torch.utils.flop_counter) and serialized size of ``model``; for an
    ``ExitView``, of what a device that stops at that exit must hold and compute."""
    if isinstance(model, ExitView):
        depth, params = model.model.depth, model.path_parameters()
        held = [p.detach() for p in params]
    else:
        depth, params, held = model.depth, list(model.parameters()), model.state_dict()
    buf = io.BytesIO()
    torch.save(held, buf)
    return ModelCost(depth=depth, params=sum(p.numel() for p in params),
                     macs=count_macs(model, input_shape), size_mb=buf.tell() / 2**20)
