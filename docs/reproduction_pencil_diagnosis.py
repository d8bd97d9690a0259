"""Why PENCIL ends BELOW chance at MNIST sym-0.8 with the paper variant and Table I's lambda.

Runs PENCIL's reproduction config (``search_spaces/reproduce_mnist_table2.yaml``, sym-0.8: 80
epochs, stages 30 / 60, lambda 3000, seed 1: the run that ended at 0.85% test accuracy) and the
same config with ``lambda / C`` (300: the published code's label step for lambda 3000, whose
``lc`` is a mean over the C classes), and records after every epoch, besides the method's own
analytics:

* test accuracy and the test confusion matrix (clean class x predicted class);
* on the training images (un-augmented): the label table's class (argmax of ``y~``) against the
  clean label, split into samples whose noisy label was clean / noisy (the method's
  ``label_acc_clean`` / ``label_acc_noisy``), and against the network's top-1 and top-2 classes;
* the label step's size: ``lambda / B`` is the per-sample step on ``y~`` (the update is
  ``y~ -= lambda * dL/dy~`` with ``L`` a batch mean).

    python docs/reproduction_pencil_diagnosis.py --data-root ../shared/data --lambda 3000 \
        --out docs/results/pencil_sym-0.8_diagnosis/lambda3000.json
    python docs/reproduction_pencil_diagnosis.py --data-root ../shared/data --lambda 300 \
        --out docs/results/pencil_sym-0.8_diagnosis/lambda300.json
    python docs/reproduction_pencil_diagnosis.py --figure docs/results/pencil_sym-0.8_diagnosis \
        --out docs/figures/reproduction/pencil_sym-0.8_diagnosis.png

The test set chooses nothing here: this is a diagnosis of one fixed config, not a selection.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tune_lnl.data.device import predict_logits  # noqa: E402

SPACE = ROOT / "search_spaces" / "reproduce_mnist_table2.yaml"


@torch.no_grad()
def snapshot(method) -> dict:
    """The epoch's diagnosis from the method's network and label table."""
    d = method.data
    c = d.num_classes
    test_logits = d.logits(method.net, "test")
    pred = test_logits.argmax(1)
    confusion = torch.bincount(d.test_y * c + pred, minlength=c * c).view(c, c)
    train_logits = predict_logits(method.net, d.train_x)  # every training image, un-augmented
    top2 = train_logits.topk(2, dim=1).indices
    table = method.ytilde.argmax(1)
    clean, noisy = d.train_clean, d.train_noisy
    was_clean = noisy == clean
    return {
        "test_acc": float((pred == d.test_y).float().mean()),
        "test_confusion": confusion.tolist(),
        # the most frequent prediction for each clean test class, and its share of that class
        "test_top_prediction": [int(confusion[k].argmax()) for k in range(c)],
        "train_acc_clean": float((train_logits.argmax(1) == clean).float().mean()),
        "table_acc": float((table == clean).float().mean()),
        "table_acc_on_clean_labels": float((table[was_clean] == clean[was_clean]).float().mean()),
        "table_acc_on_noisy_labels": float((table[~was_clean] == clean[~was_clean]).float().mean()),
        "table_is_net_top1": float((table == top2[:, 0]).float().mean()),
        "table_is_net_top2": float((table == top2[:, 1]).float().mean()),
        "table_is_noisy_label": float((table == noisy).float().mean()),
        "net_top1_prob_mean": float(train_logits.softmax(1).amax(1).mean()),
    }


def run(args) -> None:
    from tune_lnl.config import run_config
    from tune_lnl.methods import method_class

    cfg = run_config(SPACE, "sym-0.8", args.data_root, method="pencil")
    cfg.update(seed=args.seed, device="cpu", epochs=args.epochs)
    cfg["lambda"] = args.lam
    torch.set_num_threads(1)
    method = method_class("pencil")(cfg)
    b = int(cfg["batch_size"])
    out = {"config": {k: v for k, v in cfg.items() if k != "data_root"}, "per_sample_label_step": args.lam / b,
           "epochs": []}
    print(f"PENCIL sym-0.8, lambda {args.lam} (per-sample step lambda/B = {args.lam / b:.2f}), seed {args.seed}",
          flush=True)
    for e in range(args.epochs):
        t = time.perf_counter()
        metrics = method.step()
        snap = {"epoch": e + 1, "stage": metrics.get("stage"), **snapshot(method)}
        out["epochs"].append(snap)
        print(f"epoch {e + 1:3d} stage {snap['stage']} test {100 * snap['test_acc']:6.2f}  table=clean "
              f"{100 * snap['table_acc']:5.1f} (clean labels {100 * snap['table_acc_on_clean_labels']:5.1f}, noisy "
              f"{100 * snap['table_acc_on_noisy_labels']:5.1f})  table=net top1 {100 * snap['table_is_net_top1']:5.1f} "
              f"top2 {100 * snap['table_is_net_top2']:5.1f}  top-pred per class {snap['test_top_prediction']}  "
              f"{time.perf_counter() - t:.1f} s", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


def figure(args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(Path(args.figure).glob("lambda*.json"), key=lambda p: -float(p.stem[6:]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for f in runs:
        r = json.loads(f.read_text())
        ep = [s["epoch"] for s in r["epochs"]]
        lab = f"lambda {r['config']['lambda']:g} (step/sample {r['per_sample_label_step']:.1f})"
        axes[0].plot(ep, [100 * s["test_acc"] for s in r["epochs"]], label=lab)
        axes[1].plot(ep, [100 * s["table_acc_on_clean_labels"] for s in r["epochs"]], label=lab + ": clean labels")
        axes[1].plot(ep, [100 * s["table_acc_on_noisy_labels"] for s in r["epochs"]], "--", label=lab + ": noisy labels")
        axes[2].plot(ep, [100 * s["table_is_net_top1"] for s in r["epochs"]], label=lab + ": net's top-1")
        axes[2].plot(ep, [100 * s["table_is_net_top2"] for s in r["epochs"]], "--", label=lab + ": net's top-2")
    axes[0].axhline(10, color="grey", lw=0.8, ls=":")
    axes[0].set(title="test accuracy (%); dotted: chance", xlabel="epoch")
    axes[1].set(title="label table = clean label (%)", xlabel="epoch")
    axes[2].set(title="label table = the network's k-th class (%)", xlabel="epoch")
    for ax in axes:
        ax.axvline(30, color="grey", lw=0.8)
        ax.axvline(60, color="grey", lw=0.8)
        ax.legend(fontsize=7)
    fig.suptitle("PENCIL, MNIST sym-0.8, paper variant, seed 1: stage 2 (label learning) from epoch 31 to 60")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--lambda", dest="lam", type=float, default=3000.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--out", required=True)
    ap.add_argument("--figure", help="draw the figure from this folder's lambda*.json instead of running")
    args = ap.parse_args()
    figure(args) if args.figure else run(args)


if __name__ == "__main__":
    main()
