"""Backbones: output shapes, parameter counts computed by hand / from He et al. 2016."""
import pytest
import torch
from torch import nn

from tune_lnl.models import CNN6, MODELS, ShortcutA, build_model


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["mlp", "cnn6", "resnet20", "resnet32", "resnet56"])
def test_output_shape_cifar(name):
    torch.manual_seed(0)
    model = build_model(name, 10, (3, 32, 32))
    out = model(torch.rand(4, 3, 32, 32))
    assert out.shape == (4, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["mlp", "cnn6", "resnet20"])
def test_output_shape_mnist(name):
    model = build_model(name, 10, (1, 28, 28))
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_registry_and_unknown_name():
    assert set(MODELS) == {"mlp", "cnn6", "resnet20", "resnet32", "resnet56", "resnet34", "resnet18"}
    with pytest.raises(ValueError):
        build_model("resnet50", 10, (3, 32, 32))
    with pytest.raises(ValueError, match="only for resnet18"):
        build_model("cnn6", 10, (3, 32, 32), pretrained=True)


def test_cnn6_parameter_count_by_hand():
    chans = [3, 64, 64, 128, 128, 196, 16]
    expected = 0
    for c_in, c_out in zip(chans[:-1], chans[1:]):
        expected += 3 * 3 * c_in * c_out + c_out  # conv weight + bias
        expected += 2 * c_out                     # BN weight + bias
    expected += 256 * 10 + 10                     # 16 * 4 * 4 = 256 -> 10
    assert expected == 518150
    assert _n_params(CNN6(10)) == expected
    # the 28x28 variant only changes the classifier: 16 * 3 * 3 = 144 features, one input channel
    expected_mnist = expected - (256 * 10) + 144 * 10 - 9 * 3 * 64 + 9 * 1 * 64
    assert _n_params(build_model("cnn6", 10, (1, 28, 28))) == expected_mnist


def _resnet_params_by_hand(n: int, num_classes: int = 10) -> int:
    """Convs (no bias) + BNs + fc, with NO shortcut parameters (option A)."""
    total = 3 * 3 * 3 * 16 + 2 * 16                   # stem conv + BN
    c_in = 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += 3 * 3 * c_in * c + 3 * 3 * c * c  # two convs
            total += 2 * (2 * c)                       # two BNs
            c_in = c
    return total + 64 * num_classes + num_classes


@pytest.mark.parametrize("name,n,paper_millions", [("resnet20", 3, 0.27), ("resnet32", 5, 0.46),
                                                   ("resnet56", 9, 0.85)])
def test_resnet_parameter_counts(name, n, paper_millions):
    model = build_model(name, 10, (3, 32, 32))
    count = _n_params(model)
    assert count == _resnet_params_by_hand(n)                 # option A adds no parameters
    assert abs(count / 1e6 - paper_millions) / paper_millions < 0.03  # He et al. 2016, Table 6
    depth = sum(isinstance(m, nn.Conv2d) for m in model.modules()) + 1  # + the fc layer
    assert depth == 6 * n + 2
    shortcuts = [m for m in model.modules() if isinstance(m, ShortcutA)]
    assert len(shortcuts) == 3 * n and all(_n_params(s) == 0 for s in shortcuts)


def _resnet34_params_by_hand(num_classes: int, in_channels: int = 3) -> int:
    """He et al.'s ResNet-34 (basic blocks [3, 4, 6, 3] at 64/128/256/512 channels, projection
    shortcuts 1x1 conv + BN where the shape changes) with a 3x3 stem conv and no max-pool."""
    total = 3 * 3 * in_channels * 64 + 2 * 64         # stem conv (no bias) + BN
    c_in = 64
    for c, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for _ in range(blocks):
            total += 3 * 3 * c_in * c + 3 * 3 * c * c + 2 * (2 * c)  # two convs, two BNs
            if c_in != c:
                total += c_in * c + 2 * c                            # projection shortcut + BN
            c_in = c
    return total + 512 * num_classes + num_classes


@pytest.mark.parametrize("classes,channels", [(100, 3), (10, 3), (10, 1)])
def test_resnet34_cifar_parameter_count_and_resolution(classes, channels):
    model = build_model("resnet34", classes, (channels, 32, 32))
    assert _n_params(model) == _resnet34_params_by_hand(classes, channels)
    if classes == 100:
        assert abs(_n_params(model) / 1e6 - 21.3) < 0.05  # the CIFAR-100 ResNet-34 commonly reported: 21.3M
    seen = []
    model.layer4.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:])))
    assert model(torch.rand(2, channels, 32, 32)).shape == (2, classes)
    assert seen == [(512, 4, 4)]  # 3x3 stride-1 stem, no max-pool: 32 -> 32 -> 16 -> 8 -> 4


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.arange(2 * 16 * 8 * 8, dtype=torch.float32).reshape(2, 16, 8, 8)
    y = ShortcutA(stride=2, extra_channels=16)(x)
    assert y.shape == (2, 32, 4, 4)
    for i in range(4):
        for j in range(4):
            assert torch.equal(y[:, :16, i, j], x[:, :, 2 * i, 2 * j])
    assert (y[:, 16:] == 0).all()
    assert ShortcutA(1, 0)(x) is x


def test_resnet_stage_resolutions():
    model = build_model("resnet20", 10, (3, 32, 32))
    shapes = []
    for block in model.blocks:
        block.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    model(torch.rand(2, 3, 32, 32))
    assert shapes == [(16, 32, 32)] * 3 + [(32, 16, 16)] * 3 + [(64, 8, 8)] * 3


def test_resnet_conv_init_is_kaiming_normal():
    torch.manual_seed(0)
    model = build_model("resnet56", 10, (3, 32, 32))
    w = torch.cat([m.weight.flatten() for m in model.modules()
                   if isinstance(m, nn.Conv2d) and m.in_channels == 64])  # fan_in 576
    assert abs(w.std().item() / (2.0 / 576) ** 0.5 - 1) < 0.02
    assert abs(w.mean().item()) < 1e-3


def test_backward_runs():
    model = build_model("cnn6", 10, (3, 32, 32))
    loss = nn.functional.cross_entropy(model(torch.rand(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
