"""A Table-II-shaped experiment on a cluster, on paper: every study at once vs one at a time.

    python benchmarks/simulate_cluster.py --measured docs/results/concurrency/medium.json \
        --slots 64 --trials 50 --settings 5 --seeds 5 --epochs 200 --grace 20 --rf 3

The model (a discrete-event simulation, seeded):

* studies: every method found in the measured runs x ``--settings``; ``--trials`` trials each;
* a trial's length follows ASHA's rungs (``grace * rf**k`` below ``--epochs``): it stops at rung k
  with probability ``(1 - 1/rf) / rf**k`` and runs to the end with ``1 / rf**K`` (the share
  ASHA promotes at each rung; the real, asynchronous ASHA promotes a little more early on);
* an epoch lasts what one measured epoch of that method lasted (drawn from the measured runs'
  mean epoch times of that method: ``benchmarks/concurrency.py`` writes them);
* finals: ``--seeds`` full-length runs per study, once its search has ended;
* **at once** (tune_lnl's default): a free slot takes a waiting final run first (the longest work),
  else a trial of the open study with the fewest trials running, below the per-study cap
  (``tune_lnl.search.studies.study_cap``, "auto", from the studies open at that moment: what the
  Optuna backend does; Ray fixes a study's cap when its Tune run starts);
* **one at a time**: each study's trials on every slot (Ray's old ``max_concurrent_trials`` = the
  slots), the next study when the last trial of this one has ended; then the finals, either one
  study's seeds at a time (the Ray backend's old finals: a Tune run per study) or pooled (the
  Optuna backend's old finals).

It ignores start-up and scheduling overheads and assumes trials do not slow each other down. It
prints wall time (hours) and slot utilisation each way.
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tune_lnl.config import milestones  # noqa: E402
from tune_lnl.search.studies import study_cap  # noqa: E402


def trial_epochs(rng: random.Random, epochs: int, grace: int, rf: int) -> int:
    for rung in milestones(grace, rf, epochs)[:-1]:  # stopped at a rung with probability 1 - 1/rf
        if rng.random() < 1 - 1 / rf:
            return rung
    return epochs


def simulate(durations: dict, slots: int, at_once: bool, pooled_finals: bool, trials: int, seeds: int,
             epochs: int, grace: int, rf: int, seed: int) -> dict:
    """``durations``: study -> list of measured seconds per epoch to draw from."""
    rng = random.Random(seed)
    studies = list(durations)
    work = {s: [trial_epochs(rng, epochs, grace, rf) * rng.choice(durations[s]) for _ in range(trials)]
            for s in studies}
    finals_of = {s: [epochs * rng.choice(durations[s]) for _ in range(seeds)] for s in studies}
    running = {s: 0 for s in studies}
    search_open = list(studies)
    finals_queue: list[tuple[str, float]] = []
    finals_blocks = [] if at_once or pooled_finals else [list(finals_of[s]) for s in studies]
    events: list[tuple[float, int, str, str]] = []  # (end, tie, kind, study)
    t, busy, free, tie = 0.0, 0.0, slots, 0

    def start(kind, study, seconds):
        nonlocal free, busy, tie
        free -= 1
        busy += seconds
        tie += 1
        heapq.heappush(events, (t + seconds, tie, kind, study))

    while True:
        while free > 0:
            if finals_queue:
                study, seconds = finals_queue.pop(0)
                start("final", study, seconds)
                continue
            open_ = search_open if at_once else search_open[:1]
            cap = study_cap("auto", trials, slots, len(open_)) if at_once else slots  # from the open studies
            cands = [s for s in open_ if work[s] and running[s] < cap]
            if cands:
                s = min(cands, key=lambda s: (running[s], studies.index(s)))
                running[s] += 1
                start("trial", s, work[s].pop())
                continue
            if not search_open and finals_blocks and not events:  # Ray's old finals: a study at a time
                finals_queue.extend(("-", x) for x in finals_blocks.pop(0))
                continue
            break
        if not events:
            break
        t, _, kind, study = heapq.heappop(events)
        free += 1
        if kind == "trial":
            running[study] -= 1
            if not work[study] and running[study] == 0:
                search_open.remove(study)
                if at_once:
                    finals_queue.extend((study, x) for x in finals_of[study])
                elif not search_open and pooled_finals:
                    finals_queue.extend((s, x) for s in studies for x in finals_of[s])
    return {"wall_h": t / 3600, "utilisation": busy / (slots * t)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--measured", required=True, help="JSON of benchmarks/concurrency.py")
    ap.add_argument("--slots", type=int, default=64)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--settings", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--grace", type=int, default=20)
    ap.add_argument("--rf", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20, help="seeded draws averaged")
    a = ap.parse_args(argv)
    measured = json.loads(Path(a.measured).read_text())
    records = next(iter(measured["results"].values()))["run_records"]
    per_method: dict[str, list[float]] = {}
    for r in records:
        per_method.setdefault(r["method"], []).append(r["epoch_s"])
    durations = {f"{m}/{k}": v for m, v in sorted(per_method.items()) for k in range(a.settings)}
    print(f"{len(durations)} studies ({len(per_method)} methods x {a.settings} settings), {a.trials} trials each, "
          f"ASHA rungs from {a.grace} by {a.rf} to {a.epochs} epochs, {a.seeds} final seeds, {a.slots} slots; "
          f"seconds per epoch drawn from {a.measured}: "
          + ", ".join(f"{m} {sum(v) / len(v):.2f}" for m, v in sorted(per_method.items())) + "\n")
    print("| schedule | wall h | slot utilisation |\n|---|---:|---:|")
    ways = {"at once (default)": (True, True), "one at a time, finals a study at a time (old Ray)": (False, False),
            "one at a time, finals pooled (old Optuna backend)": (False, True)}
    for name, (at_once, pooled) in ways.items():
        rs = [simulate(durations, a.slots, at_once, pooled, a.trials, a.seeds, a.epochs, a.grace, a.rf, i)
              for i in range(a.repeats)]
        wall = sum(r["wall_h"] for r in rs) / len(rs)
        util = sum(r["utilisation"] for r in rs) / len(rs)
        sd = math.sqrt(sum((r["wall_h"] - wall) ** 2 for r in rs) / max(1, len(rs) - 1))
        print(f"| {name} | {wall:.2f} ± {sd:.2f} | {util:.1%} |")


if __name__ == "__main__":
    main()
