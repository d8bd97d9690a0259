"""``python -m tune_lnl.train --config FILE --setting NAME``: ONE training, without Ray.

FILE is a search-space YAML (its fixed values and the paper's values of the searched
hyperparameters) or an exported ``best_configs.yaml``. Prints per epoch the proxy, the test
accuracy and the epoch's wall time.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .config import ConfigError, load_experiment
from .data import DataNotFoundError, resolve_data_root
from .export import BEST_KIND


def _one_method(p: Path, available: list[str], method: str | None) -> str:
    if method is None:
        if len(available) > 1:
            raise ConfigError(f"{p}: holds several methods ({', '.join(available)}): pick one with --method")
        return available[0]
    if method not in available:
        raise ConfigError(f"{p}: methods: no method {method!r}; available: {', '.join(available)}")
    return method


def run_config_from_file(path: str, setting: str, data_root: Path, smoke: bool = False,
                         method: str | None = None) -> dict:
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    if isinstance(doc, dict) and doc.get("kind") == BEST_KIND:
        per_setting = doc["methods"][_one_method(p, list(doc["methods"]), method)]
        if setting not in per_setting:
            raise ConfigError(f"{p}: settings: no setting {setting!r}; available: {', '.join(per_setting)}")
        return {**per_setting[setting]["config"], "data_root": str(data_root)}
    exp = load_experiment(p, smoke_mode=smoke)
    space = exp.methods[_one_method(p, list(exp.methods), method)]
    if setting not in space.settings:
        raise ConfigError(f"{p}: settings: no setting {setting!r}; available: {', '.join(space.settings)}")
    return space.paper_config(setting, str(data_root))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tune_lnl.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="search-space YAML or best_configs.yaml")
    ap.add_argument("--setting", required=True, help="noise setting name, e.g. sym-0.2")
    ap.add_argument("--method", help="which method, when the file holds several")
    ap.add_argument("--seed", type=int, help="training seed (default: the file's)")
    ap.add_argument("--epochs", type=int, help="number of epochs (default: the file's)")
    ap.add_argument("--data-root", help="dataset folder (default: $TUNE_LNL_DATA, else ./data)")
    ap.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the file's, 'auto')")
    ap.add_argument("--smoke", action="store_true", help="use the space file's smoke budget")
    ap.add_argument("--checkpoint", help="save the final state here (a .pt file)")
    args = ap.parse_args(argv)
    from .methods import method_class
    try:
        cfg = run_config_from_file(args.config, args.setting, resolve_data_root(args.data_root), args.smoke,
                                   args.method)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for key in ("seed", "epochs", "device"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    try:
        method = method_class(cfg["method"])(cfg)
    except DataNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = method.data.info
    noise = info.get("noise_rate_realised")
    print(f"{cfg['method']} on {cfg['dataset']} {args.setting}: {info['n_train']} train, {info['n_val']} noisy-val, "
          f"{info['n_test']} test; realised noise {'real (unknown)' if noise is None else f'{noise:.4f}'}; "
          f"device {method.device}", flush=True)
    while not method.done:
        try:
            m = method.step()
        except FloatingPointError as exc:
            print(f"error: {exc} (lower the learning rate or check the config)", file=sys.stderr)
            return 1
        print(f"epoch {m['epoch']:4d}  proxy({cfg['proxy']}) {m['proxy']:.4f}  best {m['proxy_best']:.4f}"
              f"@{m['proxy_best_epoch']}  test {m['test_acc']:.4f}  time {m['epoch_time']:.2f}s", flush=True)
    if args.checkpoint:
        method.save(args.checkpoint)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
