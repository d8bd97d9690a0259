"""A backbone's layer groups ("parts"), for methods that treat its later layers apart from its earlier
ones (PES, Bai et al. 2021: re-initialise and retrain the last parts with the earlier ones fixed),
without any backbone declaring them.

:func:`layer_parts` reads them off the module tree: starting at the model, while the current module
has exactly one child that holds parameters (a wrapper such as ``MLP.net`` or the Clothing1M
``Sequential(normalize, backbone)``), step into it; the parts are then the children that hold
parameters, in registration order (parameter-free children -- ReLU, pooling, flatten -- belong to
none). What that gives for the backbones of :mod:`tune_lnl.models`:

===============  =================================================  ======================
model            parts                                              last 2 / last 1
===============  =================================================  ======================
``mlp``          ``Linear(784, 256)``, ``Linear(256, C)``           both / the output layer
``cnn6``         ``features`` (the six convs), ``classifier``       both / ``classifier``
``resnet20/32/56`` ``conv``, ``bn``, ``blocks`` (all 3 stages), ``fc``  ``blocks`` + ``fc`` / ``fc``
``resnet34``     ``conv1``, ``bn1``, ``layer1`` .. ``layer4``, ``fc``  ``layer4`` + ``fc`` / ``fc``
``resnet18``     (inside ``backbone``) the same as ``resnet34``     ``layer4`` + ``fc`` / ``fc``
===============  =================================================  ======================

For the torchvision ResNets (and the PreAct ResNet-18 of the PES code: ``conv1``, ``bn1``,
``layer1`` .. ``layer4``, ``linear``) the last two parts are exactly the paper's parts 2 and 3
("block 4 of ResNet as part 2, and the final layer as part 3"); for the He et al. CIFAR ResNets,
whose blocks sit in one ``Sequential``, the second-to-last part is every block (coarser than the
paper's last stage), and for the two-layer MLP and CNN6 it is everything before the output layer
(PES never re-initialises a model's first part: trainables/pes_semi.py caps ``k`` at the parts - 1).
"""
from __future__ import annotations

import torch
from torch import nn


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def layer_parts(model: nn.Module) -> list[nn.Module]:
    """The model's parts in forward order (see the module docstring); ``[model]`` for a module
    without parametrised children (a bare ``Linear``)."""
    module = model
    while True:
        kids = [c for c in module.children() if _has_params(c)]
        if len(kids) != 1:
            return kids or [module]
        module = kids[0]


def last_parts(model: nn.Module, k: int) -> list[nn.Module]:
    """The last ``k`` parts of :func:`layer_parts` (all of them when the model has fewer)."""
    parts = layer_parts(model)
    return parts[max(0, len(parts) - k):] if k > 0 else []


def parameters_of(modules: list[nn.Module]) -> list[nn.Parameter]:
    """The parameters of ``modules``, in order, each once."""
    seen: dict[int, nn.Parameter] = {}
    for m in modules:
        for p in m.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def reinitialise(modules: list[nn.Module], seed: int) -> None:
    """Fresh weights for ``modules``, in place: ``reset_parameters()`` of every submodule that has
    one (PyTorch's default initialisation of Linear, Conv, BatchNorm -- whose running statistics are
    reset too), drawn from the generators seeded with ``seed`` (the global RNGs are left as they were).
    The parameter objects stay the same, so optimizers keep referring to them."""
    cuda = sorted({p.device.index or 0 for p in parameters_of(modules) if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda), torch.no_grad():
        torch.manual_seed(seed)  # (every device's generator; the forked ones are restored after)
        for m in modules:
            for sub in m.modules():
                reset = getattr(sub, "reset_parameters", None)
                if callable(reset):
                    reset()
