"""CIFAR-style ResNets: depth rule, shapes, parameter and MAC counts, normalisation, shortcut."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import make_model

from akt_core import AktError
from akt_core.models import BasicBlock, Normalize, ResNet, count_macs, model_cost, resnet

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.mark.parametrize("depth", [8, 14, 20, 26, 32])
def test_valid_depths_have_n_blocks_per_stage(depth):
    m = resnet(depth)
    n = (depth - 2) // 6
    assert len(m.blocks) == 3 * n
    # 2 convs per block + the stem conv + the fc layer = depth weighted layers
    n_conv = sum(isinstance(mod, nn.Conv2d) for mod in m.modules())
    n_fc = sum(isinstance(mod, nn.Linear) for mod in m.modules())
    assert n_conv + n_fc == depth


@pytest.mark.parametrize("depth", [16, 7, 9, 2, 0, -4, 13, 8.0, "8"])
def test_invalid_depth_raises_naming_value(depth):
    with pytest.raises(AktError) as err:
        resnet(depth)
    assert repr(depth) in str(err.value)
    assert "6n+2" in str(err.value)


def test_num_classes_below_two_raises():
    with pytest.raises(AktError, match="num_classes"):
        resnet(8, num_classes=1)


@pytest.mark.parametrize("shape,classes", [((1, 28, 28), 10), ((3, 32, 32), 10), ((3, 32, 32), 100)])
def test_output_shape(shape, classes):
    m = make_model(8, classes, shape[0]).eval()
    with torch.no_grad():
        out = m(torch.rand(5, *shape))
    assert out.shape == (5, classes)
    assert out.dtype == torch.float32


def test_stage_resolutions_for_mnist_and_cifar():
    """28 -> 28, 14, 7 and 32 -> 32, 16, 8 through the three stages."""
    for c, s, expect in [(1, 28, [28, 14, 7]), (3, 32, [32, 16, 8])]:
        m = make_model(8, 10, c).eval()
        seen = []
        hooks = [b.register_forward_hook(lambda mod, i, o: seen.append((o.shape[1], o.shape[-1])))
                 for b in m.blocks]
        with torch.no_grad():
            m(torch.rand(2, c, s, s))
        for h in hooks:
            h.remove()
        assert seen == list(zip([16, 32, 64], expect))


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_cifar10():
    assert _n_params(resnet(8)) == 75290
    assert _n_params(resnet(26)) == 366938


def test_parameter_count_res8_by_hand():
    """conv3x3 weights (no bias) + BN affine (2 per channel) + fc, for Res8 on 3-channel input."""
    conv = lambda cin, cout: cin * cout * 9
    bn = lambda c: 2 * c
    total = (conv(3, 16) + bn(16)
             + conv(16, 16) + bn(16) + conv(16, 16) + bn(16)
             + conv(16, 32) + bn(32) + conv(32, 32) + bn(32)
             + conv(32, 64) + bn(64) + conv(64, 64) + bn(64)
             + 64 * 10 + 10)
    assert total == 75290 == _n_params(resnet(8))
    # MNIST (1 channel) and CIFAR-100 (100 classes) differ only in the stem and the head
    assert _n_params(resnet(8, 10, 1)) == 75290 - 2 * 16 * 9
    assert _n_params(resnet(8, 100)) == 75290 + 90 * 65


def test_model_cost_macs():
    c26 = model_cost(resnet(26), (3, 32, 32))
    c8 = model_cost(resnet(8), (3, 32, 32))
    assert (c26.depth, c26.params, c26.macs) == (26, 366938, 54706816)
    assert (c8.depth, c8.params, c8.macs) == (8, 75290, 12239488)
    assert c26.gflops == pytest.approx(2 * 54706816 / 1e9)
    # size: float32 weights + buffers, a little more than 4 bytes per parameter
    assert 4 * 366938 / 2**20 < c26.size_mb < 1.2 * 4 * 366938 / 2**20 + 0.1


def test_macs_by_hand_formula():
    """MACs of a conv = H_out * W_out * C_out * C_in * k * k; of a linear = in * out."""
    def conv_macs(hw, cin, cout):
        return hw * hw * cout * cin * 9

    assert count_macs(nn.Conv2d(3, 16, 3, 1, 1, bias=False), (3, 32, 32)) == conv_macs(32, 3, 16)
    assert count_macs(nn.Conv2d(16, 32, 3, 2, 1, bias=False), (16, 32, 32)) == conv_macs(16, 16, 32)
    # Res8 whole network by hand: stem, block1 (2 convs @32), block2 (@16), block3 (@8), fc
    res8 = (conv_macs(32, 3, 16) + 2 * conv_macs(32, 16, 16)
            + conv_macs(16, 16, 32) + conv_macs(16, 32, 32)
            + conv_macs(8, 32, 64) + conv_macs(8, 64, 64) + 64 * 10)
    assert res8 == 12239488
    assert count_macs(resnet(8), (3, 32, 32)) == res8


def test_macs_match_torch_flop_counter_directly():
    from torch.utils.flop_counter import FlopCounterMode

    m = resnet(26).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(torch.rand(1, 3, 32, 32))
    assert fc.get_total_flops() == 2 * 54706816


def test_count_macs_restores_training_mode():
    m = resnet(8).train()
    count_macs(m, (3, 32, 32))
    assert m.training
    m.eval()
    count_macs(m, (3, 32, 32))
    assert not m.training


def test_normalisation_inside():
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.2)
    m = make_model(8, mean=mean, std=std).eval()
    # buffers travel with the weights
    sd = m.state_dict()
    assert torch.equal(sd["normalize.mean"].flatten(), torch.tensor(mean))
    assert torch.equal(sd["normalize.std"].flatten(), torch.tensor(std))
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        out = F.relu(m.bn1(m.conv1(xn)))
        out = m.blocks(out)
        manual = m.fc(out.mean(dim=(2, 3)))
        auto = m(x)
    assert torch.allclose(auto, manual, atol=1e-5, rtol=1e-5)
    # the default is mean 0.5, std 0.5 per channel: (x - 0.5) / 0.5 = 2x - 1
    d = Normalize([0.5] * 3, [0.5] * 3)
    assert torch.allclose(d(x), 2 * x - 1, atol=1e-6)


def test_only_conv_bn_fc_have_parameters():
    m = resnet(20)
    owners = {type(mod) for mod in m.modules() if any(True for _ in mod.parameters(recurse=False))}
    assert owners == {nn.Conv2d, nn.BatchNorm2d, nn.Linear}
    assert all(mod.bias is None for mod in m.modules() if isinstance(mod, nn.Conv2d))
    # every conv is 3x3 (no 1x1 projection shortcut)
    assert {mod.kernel_size for mod in m.modules() if isinstance(mod, nn.Conv2d)} == {(3, 3)}


def test_shortcut_is_subsample_and_zero_pad():
    blk = BasicBlock(16, 32, stride=2)
    x = torch.rand(2, 16, 8, 8)
    s = blk.shortcut(x)
    assert s.shape == (2, 32, 4, 4)
    assert torch.equal(s[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(s[:, 16:], torch.zeros(2, 16, 4, 4))
    ident = BasicBlock(16, 16, stride=1)
    assert torch.equal(ident.shortcut(x), x)


def test_init_is_he_normal_fan_out_and_bn_identity():
    torch.manual_seed(0)
    m = resnet(26)
    w = torch.cat([mod.weight.flatten() for mod in m.modules()
                   if isinstance(mod, nn.Conv2d) and mod.out_channels == 64])
    # fan_out = 64 * 9, std = sqrt(2 / fan_out)
    assert w.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0)


def test_isinstance():
    assert isinstance(resnet(8), ResNet)


def test_multi_exit_res26_exits_and_their_cost():
    """Exit 3 is the plain Res26 (same parameters, same MACs); each ExitView computes only its path."""
    from akt_core.models import ExitView, MultiExitResNet

    torch.manual_seed(0)
    m = MultiExitResNet(26, 10, 3).eval()
    x = torch.rand(2, 3, 32, 32)
    outs = m.exits(x)
    assert len(outs) == 3 and all(o.shape == (2, 10) for o in outs)
    assert all(torch.equal(ExitView(m, k)(x), outs[k - 1]) for k in (1, 2, 3)) and torch.equal(m(x), outs[-1])
    plain = model_cost(resnet(26, 10, 3), (3, 32, 32))
    costs = [model_cost(ExitView(m, k), (3, 32, 32)) for k in (1, 2, 3)]
    assert (costs[2].params, costs[2].macs) == (plain.params, plain.macs)
    assert costs[0].macs < costs[1].macs < costs[2].macs and costs[0].params < costs[1].params < costs[2].params
    # exit 1: the stem, 4 blocks of 16 channels, its head (conv 16->64 stride 2, BN, linear 64->10)
    stem = 3 * 16 * 9 + 2 * 16
    blocks = 4 * (2 * (16 * 16 * 9) + 4 * 16)
    head = 16 * 64 * 9 + 2 * 64 + 64 * 10 + 10
    assert costs[0].params == stem + blocks + head
    with pytest.raises(AktError, match="exit 4"):
        ExitView(m, 4)


def test_the_books_prose_states_the_measured_costs():
    """intro.md and errata.md quote Res26's and Res8's cost in words; they must say what the library measures."""
    from pathlib import Path

    book = Path(__file__).resolve().parent.parent / "book"
    c26, c8 = model_cost(resnet(26), (3, 32, 32)), model_cost(resnet(8), (3, 32, 32))
    intro, errata = (book / "intro.md").read_text(), (book / "errata.md").read_text()
    for c, name in ((c26, "Res26"), (c8, "Res8")):
        assert f"{name} has {c.params:,} parameters and {c.macs / 1e6:.1f} M multiply-accumulates" in " ".join(intro.split())
        assert f"**{name} has {c.params:,} parameters and {c.macs / 1e6:.1f} M MACs** ({c.macs / 1e9:.3f} GMACs, " \
               f"{2 * c.macs / 1e9:.3f} GFLOPs" in " ".join(errata.split())
    assert f"| **total** | **{c8.params:,}** | **{c8.macs:,}** | **{c26.params:,}** | **{c26.macs:,}** |" in errata
    assert f"statistics take {c26.size_mb:.2f} MiB and {c8.size_mb:.2f} MiB" in " ".join(errata.split())
