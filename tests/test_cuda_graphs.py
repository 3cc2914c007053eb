"""The CUDA-graph step (issue 21): on the CPU it is never used, and training stays bit for bit eager;
a capture that fails falls back to eager with one warning, from the state before its warm-up."""
from __future__ import annotations

import pytest
import torch
from conftest import make_model

from akt_core import cuda_graphs
from akt_core import methods as M
from akt_core.methods import StepBatch


def _setup():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    m = M.get("cln")
    return model, opt, (lambda b: m.loss(model, b, {}))


def test_on_the_cpu_the_step_is_eager_and_says_so():
    model, opt, loss_of = _setup()
    s = cuda_graphs.Stepper(loss_of, [model], opt, enabled=True)
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert s.fallback.startswith("eager") and s.graphed is None
    b = StepBatch(x=torch.rand(8, 3, 32, 32), y=torch.randint(0, 10, (8,)))
    ref, ref_opt, ref_loss = _setup()
    want = ref_loss(b)
    ref_opt.zero_grad(set_to_none=True)
    want.backward()
    ref_opt.step()
    got = s(b)
    assert torch.equal(got, want.detach())
    assert all(torch.equal(a, c) for a, c in zip(model.state_dict().values(), ref.state_dict().values()))


def test_a_failed_capture_falls_back_to_eager_from_the_state_before_the_warm_up(monkeypatch):
    model, opt, loss_of = _setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = cuda_graphs.Stepper(loss_of, [model], opt, enabled=True)
    s.enabled, s.fallback = True, None  # as on a GPU

    class Boom:  # the side stream works (warm-up steps run), the capture itself fails
        def __init__(self, *a, **k): ...
        def wait_stream(self, *a): ...

    monkeypatch.setattr(torch.cuda, "Stream", Boom)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: Boom())
    monkeypatch.setattr(torch.cuda, "stream", lambda st: __import__("contextlib").nullcontext())

    def fail(*a, **k):
        raise RuntimeError("capture is not supported here")

    monkeypatch.setattr(torch.cuda, "CUDAGraph", fail)
    b = StepBatch(x=torch.rand(8, 3, 32, 32), y=torch.randint(0, 10, (8,)))
    ref, ref_opt, ref_loss = _setup()  # one eager step from the same start
    want = ref_loss(b)
    ref_opt.zero_grad(set_to_none=True)
    want.backward()
    ref_opt.step()
    with pytest.warns(RuntimeWarning, match="CUDA-graph capture failed"):
        got = s(b)
    assert s.fallback.startswith("eager after a CUDA-graph failure (RuntimeError")
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # it did train one step
    assert torch.allclose(got, want.detach())
    for (k, a), c in zip(model.state_dict().items(), ref.state_dict().values()):
        assert torch.allclose(a.float(), c.float(), atol=1e-6), k  # exactly one step, not 1 + the warm-up's 3
