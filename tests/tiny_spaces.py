"""The cheapest searches the end-to-end tests run, and the environment their subprocesses get."""
import os

#: the environment of every search a test starts (no Ray token authentication, no usage stats)
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

#: two tiny ``lr`` searches: ``wide`` (1e-4..1e-2, paper 1e-3, 600 smoke images, search seed 3)
#: and ``narrow`` (5e-4..2e-3, paper 1e-3, 500 smoke images, search seed 0)
_KINDS = {"wide": ({"low": 1.0e-4, "high": 1.0e-2, "log": True}, 1.0e-3, 600, 3),
          "narrow": ({"low": 0.0005, "high": 0.002, "log": True}, 0.001, 500, 0)}


def tiny_space(setting: str, noise: dict, kind: str = "wide") -> dict:
    """CE on MNIST, one setting (``noise``), 2 trials and 1 final seed of 2 epochs; with
    ``--smoke`` a few hundred images."""
    lr, paper_lr, images, seed = _KINDS[kind]
    return {
        "name": "tiny", "method": "ce", "dataset": "mnist",
        "search": {"num_samples": 2, "seed": seed, "grace_period": 1, "reduction_factor": 2},
        "finals": {"seeds": 1, "last_k": 1},
        "fixed": {"epochs": 2},
        "space": {"lr": dict(lr)},
        "paper": {"lr": paper_lr},
        "settings": {setting: {"noise": dict(noise)}},
        "smoke": {"train_subset": images, "test_subset": 200, "num_samples": 2, "seeds": 1, "grace_period": 1,
                  "reduction_factor": 2},
    }
