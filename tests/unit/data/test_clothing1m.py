"""Clothing1M streaming path on a tiny dataset written in the official layout: solid-colour JPEGs
of varied sizes whose colour encodes a class, and the five list files."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from tune_lnl.data import DataNotFoundError
from tune_lnl.data.clothing1m import (
    CROP_SIZE,
    Clothing1MImages,
    center_crop,
    check_clothing1m,
    clothing1m_augment,
    decode_image,
    load_clothing1m,
    parse_clothing1m,
)
from tune_lnl.models import RESNET18_URL, resnet18_imagenet, resnet18_weights_path

# 14 colours from the {0, 128, 255}^3 grid: any two differ by >= 127 in some channel
PALETTE = torch.tensor([(r, g, b) for r in (0, 128, 255) for g in (0, 128, 255) for b in (0, 128, 255)][:14],
                       dtype=torch.float32)
SIZES = [(300, 400), (260, 260), (500, 300), (120, 90), (640, 520)]   # (W, H); the last > 2x256
N_TRAIN, N_VAL, N_TEST = 42, 14, 20
VAL_WRONG = {0: 1, 5: 6}                # val image j (colour j) labelled differently: 12/14 right
TEST_WRONG = {1: 2, 4: 9, 7: 0, 15: 3, 19: 1}   # 15/20 right


def _colour(j: int) -> int:
    return j % 14


def _noisy(j: int) -> int:     # train image j: every fifth label flipped to the next class
    return (_colour(j) + 1) % 14 if j % 5 == 0 else _colour(j)


def _clean_known(j: int) -> bool:
    return j % 3 == 0


def _write_jpeg(path: Path, colour: int, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = tuple(int(v) for v in PALETTE[colour])
    Image.new("RGB", size, rgb).save(path, quality=95)


def _write_lists(folder: Path, lists: dict[str, list[str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in lists.items():
        (folder / name).write_text("".join(f"{line}\n" for line in lines))


@pytest.fixture(scope="module")
def c1m(tmp_path_factory):
    root = tmp_path_factory.mktemp("c1m_root")
    folder = root / "clothing1m"
    train = [f"images/{j % 10}/{j % 100:02d}/train_{j},x.jpg" for j in range(N_TRAIN)]
    val = [f"images/3/{j:02d}/val_{j}.jpg" for j in range(N_VAL)]
    test = [f"images/7/{j:02d}/test_{j}.jpg" for j in range(N_TEST)]
    colour = {}
    for keys in (train, val, test):
        for j, k in enumerate(keys):
            colour[k] = _colour(j)
            _write_jpeg(folder / k, _colour(j), SIZES[j % len(SIZES)])
    val_y = [VAL_WRONG.get(j, _colour(j)) for j in range(N_VAL)]
    test_y = [TEST_WRONG.get(j, _colour(j)) for j in range(N_TEST)]
    noisy_kv = [f"{k} {_noisy(j)}" for j, k in enumerate(train)]
    noisy_kv += [f"{k} {(j + 3) % 14}" for j, k in enumerate(val + test)] + ["images/0/00/unused.jpg 4"]
    clean_kv = [f"{k} {_colour(j)}" for j, k in enumerate(train) if _clean_known(j)]
    clean_kv += [f"{k} {y}" for k, y in zip(val, val_y)] + [f"{k} {y}" for k, y in zip(test, test_y)]
    lists = {"noisy_label_kv.txt": noisy_kv, "clean_label_kv.txt": clean_kv,
             "noisy_train_key_list.txt": train, "clean_val_key_list.txt": val,
             "clean_test_key_list.txt": test}
    _write_lists(folder, lists)
    return {"root": root, "folder": folder, "train": train, "val": val, "test": test,
            "colour": colour, "lists": lists}


def _cfg(c1m, **kw):
    cfg = {"data_root": str(c1m["root"]), "proxy": "clean_val", "val_fraction": 0.25, "noise_seed": 3,
           "train_subset": 0, "test_subset": 0, "num_workers": 0, "batch_size": 8, "eval_batch_size": 6}
    cfg.update(kw)
    return cfg


def _mean_rgb(x: torch.Tensor) -> torch.Tensor:
    return x.float().mean(dim=(-2, -1))


class MeanColourModel(nn.Module):
    """Predicts the palette class nearest to the image's mean colour (inputs in [0, 1])."""

    def forward(self, x):
        return -torch.cdist(_mean_rgb(x) * 255, PALETTE.to(x.device))


# ------------------------------------------------------------------------------------- parsing

def test_parse_lists(c1m):
    lists = parse_clothing1m(c1m["folder"])
    assert (len(lists.train_keys), len(lists.val_keys), len(lists.test_keys)) == (N_TRAIN, N_VAL, N_TEST)
    assert lists.train_keys == c1m["train"]
    assert lists.train_noisy.tolist() == [_noisy(j) for j in range(N_TRAIN)]
    assert lists.train_clean.tolist() == [_colour(j) if _clean_known(j) else -1 for j in range(N_TRAIN)]
    assert lists.val_labels.tolist() == [VAL_WRONG.get(j, _colour(j)) for j in range(N_VAL)]
    assert lists.test_labels.tolist() == [TEST_WRONG.get(j, _colour(j)) for j in range(N_TEST)]


def test_load_clean_val_proxy(c1m):
    data = load_clothing1m(_cfg(c1m))
    assert data.n_train == N_TRAIN and data.splits() == ("test", "clean_val")
    assert data.split_keys("train") == c1m["train"] and data.split_keys("test") == c1m["test"]
    info = data.info
    assert (info["n_train"], info["n_val"], info["n_clean_val"], info["n_test"]) == (N_TRAIN, 0, N_VAL, N_TEST)
    known = [j for j in range(N_TRAIN) if _clean_known(j)]
    assert info["n_train_clean_known"] == len(known)
    assert info["noise_rate_realised_train"] == pytest.approx(sum(j % 5 == 0 for j in known) / len(known))


def test_subsets_are_seeded_and_applied_before_holdout(c1m):
    a = load_clothing1m(_cfg(c1m, proxy="noisy_val", train_subset=30, test_subset=7))
    b = load_clothing1m(_cfg(c1m, proxy="noisy_val", train_subset=30, test_subset=7))
    assert a.split_keys("train") == b.split_keys("train") and a.split_keys("test") == b.split_keys("test")
    assert a.n_train + a.info["n_val"] == 30 and a.info["n_test"] == 7
    kept = set(a.split_keys("train")) | set(a.split_keys("noisy_val"))
    assert len(kept) == 30 and kept <= set(c1m["train"])
    assert set(a.split_keys("test")) <= set(c1m["test"])


def test_noisy_val_holdout_is_stratified_and_disjoint(c1m):
    data = load_clothing1m(_cfg(c1m, proxy="noisy_val", val_fraction=0.25))
    assert data.splits() == ("test", "noisy_val", "clean_val")
    train, held = data.split_keys("train"), data.split_keys("noisy_val")
    assert not set(train) & set(held) and sorted(train + held) == sorted(c1m["train"])
    noisy_of = {k: _noisy(j) for j, k in enumerate(c1m["train"])}
    assert data.split_labels["noisy_val"].tolist() == [noisy_of[k] for k in held]
    assert data.train_noisy.tolist() == [noisy_of[k] for k in train]
    for c in range(14):
        n_c = sum(v == c for v in noisy_of.values())
        assert sum(noisy_of[k] == c for k in held) == int(round(0.25 * n_c))


# ------------------------------------------------------------------------------------- decoding

def test_decode_shape_and_colour(c1m, tmp_path):
    data = load_clothing1m(_cfg(c1m))
    ds = data.dataset()
    assert isinstance(ds, Clothing1MImages)
    for row in range(len(SIZES)):          # train images 0..4 cover all sizes
        x, i = ds[row]
        assert i == row and x.dtype == torch.uint8 and x.shape == (3, 256, 256)
        want = PALETTE[c1m["colour"][c1m["train"][row]]]
        assert torch.allclose(_mean_rgb(x), want, atol=4)
    Image.new("L", (400, 300), 200).save(tmp_path / "grey.jpg")   # greyscale JPEG -> 3 channels
    x = decode_image(tmp_path / "grey.jpg")
    assert x.shape == (3, 256, 256) and torch.allclose(_mean_rgb(x), torch.full((3,), 200.0), atol=2)


def test_crops_are_windows_and_flips():
    b, h = 24, 256
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.int32), torch.arange(h, dtype=torch.int32), indexing="ij")
    code = yy * 1000 + xx                                 # value encodes (y, x)
    x = (code + torch.arange(3).view(3, 1, 1) * 10 ** 6).expand(b, 3, h, h).contiguous()
    x = x + torch.arange(b).view(b, 1, 1, 1) * 10 ** 7    # ... and the sample
    g = torch.Generator().manual_seed(0)
    out = clothing1m_augment(x, g)
    assert out.shape == (b, 3, CROP_SIZE, CROP_SIZE)
    assert ((out[:, 1] - out[:, 0]) == 10 ** 6).all()     # channels stay aligned
    v = out[:, 0] - torch.arange(b, dtype=torch.int32).view(b, 1, 1) * 10 ** 7
    ys, xs = v // 1000, v % 1000                         # source (y, x) of every output pixel
    oy, flipped = ys[:, 0, 0], xs[:, 0, 0] > xs[:, 0, 1]
    ox = torch.where(flipped, xs[:, 0, -1], xs[:, 0, 0])
    ar = torch.arange(CROP_SIZE)
    assert torch.equal(ys, (oy[:, None] + ar).unsqueeze(2).expand_as(ys))
    want_x = ox[:, None] + torch.where(flipped[:, None], ar.flip(0), ar)
    assert torch.equal(xs, want_x.unsqueeze(1).expand_as(xs))
    assert 0 <= oy.min() and oy.max() <= h - CROP_SIZE and 0 <= ox.min() and ox.max() <= h - CROP_SIZE
    assert set(flipped.tolist()) == {False, True} and len(set(zip(oy.tolist(), ox.tolist()))) > 15
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(clothing1m_augment(x, g2), out)             # the generator fixes the crops
    c = center_crop(x, CROP_SIZE)
    assert torch.equal(c, x[:, :, 16:240, 16:240])


# ------------------------------------------------------------------------------------- batches

def _epoch(dev, state, batch_size=8, augment=True):
    g = torch.Generator().set_state(state)
    out = [(i.clone(), x.clone(), y.clone()) for i, x, y in dev.batches(batch_size, g, augment)]
    return out, g.get_state()


def test_batches_cover_epoch_in_generator_order(c1m):
    data = load_clothing1m(_cfg(c1m))
    dev = data.to_device("cpu")
    assert (dev.n_train, dev.num_classes) == (N_TRAIN, 14)
    state = torch.Generator().manual_seed(11).get_state()
    batches, end_state = _epoch(dev, state)
    idx = torch.cat([b[0] for b in batches])
    assert torch.equal(idx, torch.randperm(N_TRAIN, generator=torch.Generator().set_state(state)))
    assert [b[0].numel() for b in batches] == [8] * 5 + [2]
    keys = data.split_keys("train")
    for i, x, y in batches:
        assert x.dtype == torch.float32 and x.shape == (i.numel(), 3, 224, 224)
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert torch.equal(y, dev.train_noisy[i])
        want = PALETTE[[c1m["colour"][keys[k]] for k in i.tolist()]]
        assert torch.allclose(_mean_rgb(x) * 255, want, atol=4)
    again, end_again = _epoch(dev, state)
    assert torch.equal(end_state, end_again)
    for (i1, x1, y1), (i2, x2, y2) in zip(batches, again):
        assert torch.equal(i1, i2) and torch.equal(x1, x2) and torch.equal(y1, y2)
    one, _ = _epoch(dev, state, batch_size=41, augment=False)  # 42 = 41 + a dropped batch of one
    assert [b[0].numel() for b in one] == [41]
    # the Method interface passes the dataset's augmentation callable, or None for a centre crop
    assert dev.default_augment is clothing1m_augment
    first = lambda augment: next(dev.batches(8, torch.Generator().set_state(state), augment))
    assert torch.equal(first(dev.default_augment)[1], batches[0][1])
    assert torch.equal(first(None)[1], first(False)[1])


def test_workers_accuracy_and_determinism(c1m):
    dev0 = load_clothing1m(_cfg(c1m)).to_device("cpu")
    dev2 = load_clothing1m(_cfg(c1m, num_workers=2)).to_device("cpu")
    state = torch.Generator().manual_seed(5).get_state()
    for (i0, x0, y0), (i2, x2, y2) in zip(_epoch(dev0, state)[0], _epoch(dev2, state)[0]):
        assert torch.equal(i0, i2) and torch.equal(x0, x2) and torch.equal(y0, y2)
    model = MeanColourModel().train()
    assert dev2.accuracy(model, "test") == pytest.approx(15 / 20)
    assert dev2.accuracy(model, "clean_val") == pytest.approx(12 / 14)
    assert model.training
    # evaluation inside an open training epoch uses a separate loader and leaves the epoch intact
    g = torch.Generator().set_state(state)
    it = dev2.batches(8, g, True)
    first = next(it)
    assert dev2.accuracy(model.eval(), "test") == pytest.approx(15 / 20) and not model.training
    rest = list(it)
    assert sum(b[0].numel() for b in [first, *rest]) == N_TRAIN
    dev2.close()


def test_noisy_val_and_clean_intact_accuracy(c1m):
    model = MeanColourModel()
    dev = load_clothing1m(_cfg(c1m, proxy="noisy_val", val_fraction=0.5)).to_device("cpu")
    held = dev.host.split_keys("noisy_val")
    colour_of = {k: _colour(j) for j, k in enumerate(c1m["train"])}
    noisy_of = {k: _noisy(j) for j, k in enumerate(c1m["train"])}
    want = sum(colour_of[k] == noisy_of[k] for k in held) / len(held)
    assert dev.accuracy(model, "noisy_val") == pytest.approx(want)
    dev = load_clothing1m(_cfg(c1m, proxy="clean_intact")).to_device("cpu")
    assert dev.splits() == ("test", "clean_val", "clean_intact")
    assert dev.split_size("clean_intact") == sum(_clean_known(j) for j in range(N_TRAIN))
    assert dev.accuracy(model, "clean_intact") == 1.0
    with pytest.raises(ValueError, match="noisy_val"):
        dev.accuracy(model, "noisy_val")


# ------------------------------------------------------------------------------------- errors

def _lists_only(c1m, tmp_path, **replace) -> Path:
    folder = tmp_path / "clothing1m"
    lists = {**c1m["lists"], **replace}
    _write_lists(folder, {k: v for k, v in lists.items() if v is not None})
    return folder


def test_check_clothing1m(c1m, tmp_path):
    check_clothing1m(c1m["root"])
    with pytest.raises(DataNotFoundError, match="does not exist"):
        check_clothing1m(tmp_path)
    _lists_only(c1m, tmp_path)  # lists without images
    with pytest.raises(DataNotFoundError, match=r"train_0,x\.jpg"):
        check_clothing1m(tmp_path)


def test_missing_folder_and_list(c1m, tmp_path):
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / "clothing1m"))):
        load_clothing1m(_cfg(c1m, data_root=str(tmp_path)))
    folder = _lists_only(c1m, tmp_path, **{"clean_val_key_list.txt": None, "clean_label_kv.txt": None})
    with pytest.raises(DataNotFoundError) as err:
        parse_clothing1m(folder)
    msg = str(err.value)
    assert str(folder) in msg and "clean_val_key_list.txt" in msg and "clean_label_kv.txt" in msg
    assert "noisy_label_kv.txt" not in msg.split("incomplete: missing")[1].split("(looked")[0]


def test_lists_in_annotations_subfolder(c1m, tmp_path):
    folder = tmp_path / "clothing1m"
    _write_lists(folder / "annotations", c1m["lists"])
    assert len(parse_clothing1m(folder).train_keys) == N_TRAIN


def test_missing_image_is_named(c1m, tmp_path):
    _lists_only(c1m, tmp_path)  # lists without images
    with pytest.raises(DataNotFoundError, match=r"train_0,x\.jpg"):
        load_clothing1m(_cfg(c1m, data_root=str(tmp_path)))


@pytest.mark.parametrize("bad, match", [
    ("images/a.jpg 3 extra", "malformed"),
    ("images/a.jpg", "malformed"),
    ("images/a.jpg three", "not an integer"),
    ("images/a.jpg 14", "outside 0..13"),
    ("images/a.jpg -1", "outside 0..13"),
])
def test_malformed_label_line(c1m, tmp_path, bad, match):
    lines = list(c1m["lists"]["noisy_label_kv.txt"])
    lines.insert(4, bad)
    folder = _lists_only(c1m, tmp_path, **{"noisy_label_kv.txt": lines})
    with pytest.raises(ValueError, match=match) as err:
        parse_clothing1m(folder)
    msg = str(err.value)
    assert "noisy_label_kv.txt" in msg and "line 5" in msg and repr(bad) in msg


def test_malformed_key_line(c1m, tmp_path):
    keys = list(c1m["val"]) + ["images/1/01/a b.jpg"]
    folder = _lists_only(c1m, tmp_path, **{"clean_val_key_list.txt": keys})
    with pytest.raises(ValueError, match=rf"clean_val_key_list.txt, line {len(keys)}: malformed"):
        parse_clothing1m(folder)


def test_key_without_label(c1m, tmp_path):
    keys = list(c1m["test"]) + ["images/9/99/nowhere.jpg"]
    folder = _lists_only(c1m, tmp_path, **{"clean_test_key_list.txt": keys})
    with pytest.raises(ValueError) as err:
        parse_clothing1m(folder)
    msg = str(err.value)
    assert "images/9/99/nowhere.jpg" in msg and "clean_test_key_list.txt" in msg and "clean_label_kv.txt" in msg


# ------------------------------------------------------------------------------------- model

@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def test_missing_weights_message(hub_dir):
    with pytest.raises(RuntimeError) as err:
        resnet18_imagenet(pretrained=True)
    msg = str(err.value)
    path = hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    assert resnet18_weights_path() == path
    assert str(path) in msg and RESNET18_URL in msg and "pretrained: false" in msg


def test_resnet18_imagenet(hub_dir):
    torch.manual_seed(0)
    net = resnet18_imagenet(pretrained=False).eval()
    x = torch.rand(2, 3, 224, 224)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        out = net(x)
        assert out.shape == (2, 14)
        assert torch.allclose(out, net.backbone((x - mean) / std), atol=1e-5)
    # a cached ImageNet checkpoint (1000-way fc) is loaded, then fc is replaced by a 14-way one
    ref = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    ref["fc.weight"], ref["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    resnet18_weights_path().parent.mkdir(parents=True)
    torch.save(ref, resnet18_weights_path())
    net = resnet18_imagenet(num_classes=14, pretrained=True)
    assert torch.equal(net.backbone.conv1.weight, ref["conv1.weight"])
    assert torch.equal(net.backbone.layer4[1].bn2.running_var, ref["layer4.1.bn2.running_var"])
    assert net.backbone.fc.out_features == 14


# -- a method trains on it end to end: the clean_val proxy, exact resume ----------------------------

def test_a_method_trains_on_clothing1m_with_the_clean_val_proxy(c1m, tmp_path):
    """CE with ResNet-18 (no ImageNet weights here) through Method: the proxy is the clean
    validation accuracy, test accuracy is only logged, and save/load continues identically."""
    from method_helpers import assert_exact_resume

    from trainables.ce import CE
    from tune_lnl.methods import defaults_of

    cfg = {**defaults_of("ce"), "method": "ce", "dataset": "clothing1m", "data_root": str(c1m["root"]),
           "proxy": "clean_val", "val_fraction": 0.1, "noise_seed": 0, "noise_type": "real", "noise_rate": 0.0,
           "seed": 1, "device": "cpu", "train_subset": 16, "test_subset": 8, "model": "resnet18",
           "pretrained": False, "num_workers": 0, "batch_size": 16, "epochs": 2, "augment": True}
    data = load_clothing1m(cfg)
    straight = assert_exact_resume(lambda: CE(cfg, data), tmp_path / "ce.pt", epochs=2)
    m = straight.history[-1]
    assert m["proxy"] == m["clean_val_acc"] and "noisy_val_acc" not in m
    assert {"test_acc", "clean_val_acc"} <= set(m) and 0.0 <= m["test_acc"] <= 1.0
    straight.close()


def test_view_batches_decode_each_planned_batch_once_into_several_views(c1m):
    """The semi-supervised methods' views: for each planned index batch (any order, repeats allowed),
    the centre crop (None), the random crop + flip (the default augmentation, the same draws as
    ``batches``), and any other augmentation after that crop (``randaugment``: 224 crops too)."""
    from tune_lnl.data.augment import AUGMENTS

    dev = load_clothing1m(_cfg(c1m)).to_device("cpu")
    plan = [torch.tensor([3, 0, 3]), torch.tensor([7, 1])]
    views = list(dev.view_batches(plan, [None, dev.default_augment, AUGMENTS["randaugment"]],
                                  torch.Generator().manual_seed(0)))
    assert [v[0].tolist() for v in views] == [[3, 0, 3], [7, 1]]
    # the centre crops by index, from a whole epoch of ``batches`` without augmentation (deterministic)
    centred = {int(i): x for b_idx, b_x, _ in dev.batches(8, torch.Generator().manual_seed(1), None)
               for i, x in zip(b_idx, b_x)}
    for idx, (centre, crop, strong), noisy in views:
        assert torch.equal(noisy, dev.train_noisy[idx])
        assert centre.shape == crop.shape == strong.shape == (idx.numel(), 3, 224, 224)
        for row, i in enumerate(idx.tolist()):
            assert torch.equal(centre[row], centred[i])
