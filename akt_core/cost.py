"""Table 1 measured here: parameters, MACs, size and single-image latency (PyTorch and onnxruntime).

The paper measured a Jetson Nano and a Raspberry Pi 4; we measure this machine's CPU with batch 1
and one thread, the median of repeated runs, so only ratios between models are comparable.
"""
from __future__ import annotations

import io
import platform
import statistics
import time
import warnings
from contextlib import contextmanager

import pandas as pd
import torch

from . import data as data_mod
from .data import DatasetSpec
from .graph import EXIT_VARIANTS, SOURCE_DEPTHS
from .models import ExitView, ModelCost, MultiExitResNet, model_cost, resnet
from .provenance import device_name


@contextmanager
def _threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def torch_latency_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 50, warmup: int = 5) -> float:
    """Median wall time of one forward pass of ``x`` on one CPU thread, in milliseconds."""
    model.eval()
    times = []
    with _threads(1), torch.inference_mode():
        for i in range(warmup + repeats):
            t = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def onnx_bytes(model: torch.nn.Module, x: torch.Tensor) -> bytes:
    """The model exported to ONNX (TorchScript exporter, opset 17). The exporter's notes on constant
    folding of the shortcut's strided slices are expected (the graph is exported as it is) and silenced,
    so that Table 1's page shows no warning."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(model.eval(), (x,), buf, input_names=["x"], output_names=["logits"], opset_version=17,
                          dynamo=False)
    return buf.getvalue()


def onnx_latency_ms(onnx_model: bytes, x: torch.Tensor, repeats: int = 50, warmup: int = 5) -> float:
    """Median wall time of one onnxruntime inference on one thread, in milliseconds."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_model, opts, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    times = []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        sess.run(None, feed)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def cost_table(spec: DatasetSpec, depths=SOURCE_DEPTHS, repeats: int = 50) -> pd.DataFrame:
    """One row per depth: params, MACs, GFLOPs, size (MiB), torch and onnxruntime latency (ms)."""
    rows = []
    shape = (spec.channels, spec.size, spec.size)
    for depth in depths:
        torch.manual_seed(0)
        model = resnet(depth, spec.num_classes, spec.channels, spec.mean, spec.std).eval()
        c = model_cost(model, shape)
        x = torch.rand(1, *shape)
        onnx_model = onnx_bytes(model, x)
        rows.append({"model": f"Res{depth}", "params": c.params, "MMACs": round(c.macs / 1e6, 2),
                     "GFLOPs": round(c.gflops, 4), "size_mb": round(c.size_mb, 3),
                     "onnx_mb": round(len(onnx_model) / 2**20, 3),
                     "torch_ms_value": torch_latency_ms(model, x, repeats),
                     "onnx_ms_value": onnx_latency_ms(onnx_model, x, repeats)})
    return pd.DataFrame(rows)


def formatted(costs: pd.DataFrame) -> pd.DataFrame:
    """For display: latencies as 'x.xx ms' strings (so notebook checks can mask them as timings)."""
    out = costs.drop(columns=["torch_ms_value", "onnx_ms_value"]).copy()
    out["torch latency"] = costs["torch_ms_value"].map(lambda v: f"{v:.2f} ms")
    out["onnxruntime latency"] = costs["onnx_ms_value"].map(lambda v: f"{v:.2f} ms")
    return out.set_index("model")


def machine() -> str:
    return f"{device_name(torch.device('cpu'))}, {platform.system()} {platform.machine()}, torch {torch.__version__}"


def exit_costs(dataset: str) -> dict[str, ModelCost]:
    """Parameters and MACs of each exit of the multi-exit Res26 (``graph.EXIT_VARIANTS``) on ``dataset``:
    what an edge device that stops at that exit holds and computes (weights do not change the cost)."""
    s = data_mod.spec(dataset)
    torch.manual_seed(0)
    net = MultiExitResNet(26, s.num_classes, s.channels, s.mean, s.std)
    return {v: model_cost(ExitView(net, e.exit), (s.channels, s.size, s.size)) for v, e in EXIT_VARIANTS.items()}
