"""The command lines, thin wrappers over the Python API: ``python -m tune_lnl.search|train|
report|fidelity`` and the ``tune-lnl`` console script (``tune-lnl search ...``, ``tune-lnl train
...``, ``tune-lnl report ...``, ``tune-lnl fidelity ...``, ``tune-lnl methods``: the available
methods and their hyperparameters). Bad input (:class:`ConfigError`,
:class:`DataError`) and a search that cannot produce a result (:class:`SearchError`) print
``error: <message>`` and exit with code 2; a diverging single training exits with 1.
"""
from __future__ import annotations

import argparse
import shlex
import signal
import sys

from .errors import TuneLNLError


def _error(exc) -> SystemExit:
    print(f"error: {exc}", file=sys.stderr)
    return SystemExit(2)


# -- search -------------------------------------------------------------------------------------
SEARCH_HELP = "search every method and noise setting of a space file, retrain the winners, export the results"


def search_parser(prog: str = "python -m tune_lnl.search") -> argparse.ArgumentParser:
    # the backends from their registry; an unknown --backend: the API's ConfigError (exit 2), naming them
    from .search.backend import backend_names, backends_help, option_backends
    p = argparse.ArgumentParser(prog=prog, description=SEARCH_HELP)
    p.add_argument("--space", required=True, help="search-space YAML file (one method or several)")
    p.add_argument("--data-root", help="dataset folder (default: $TUNE_LNL_DATA, else ./data)")
    p.add_argument("--storage-path", default="results", help="where experiment folders go (default ./results)")
    p.add_argument("--name", help="experiment name (default: the space's name, '-smoke' added with --smoke)")
    p.add_argument("--num-samples", type=int, help="trials per method and setting (overrides the file)")
    p.add_argument("--methods", nargs="+", help="run only these methods of the file")
    p.add_argument("--settings", nargs="+", help="run only these settings")
    p.add_argument("--seeds", type=int, help="number of final seeds (overrides the file)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted experiment")
    p.add_argument("--backend", default=backend_names()[0], metavar="{" + ",".join(backend_names()) + "}",
                   help=backends_help())
    p.add_argument("--workers", type=int,
                   help=f"{option_backends('workers')}: worker processes (default: CPUs / search.cpus_per_trial, "
                        f"on a GPU at most 1 / search.gpus_per_trial per GPU)")
    p.add_argument("--address", help=f"join an existing Ray cluster (storage must be shared; "
                                     f"{option_backends('address')})")
    p.add_argument("--paper-only", action="store_true",
                   help="no search: the finals retrain each method's paper values (the file's 'paper' and "
                        "'fixed'); only the epoch is chosen, by the proxy (reproducing a paper's table)")
    p.add_argument("--smoke", action="store_true", help="tiny budget: a few thousand images, epochs, trials")
    p.add_argument("--plan", action="store_true",
                   help="train nothing, write nothing: print the studies, trials, rungs, finals, the expected "
                        "trial-epochs and the estimated wall time on this machine's trial slots")
    p.add_argument("--one-study-at-a-time", action="store_true",
                   help="search the studies one after another, then run the finals (the file's "
                        "search.studies_at_once: false); default: every study at once, each setting's finals "
                        "as soon as its search ends")
    from .results.trackers import TRACKERS
    p.add_argument("--tracker", metavar="{" + ",".join(TRACKERS) + "}",
                   help="also log every trial's and final seed's config and per-epoch metrics to this tracker "
                        "(mlflow: pip install -e '.[mlflow]', store $MLFLOW_TRACKING_URI else "
                        "sqlite:///<experiment>/mlflow.db; wandb: pip install -e '.[wandb]', offline into "
                        "<experiment>/wandb unless WANDB_MODE=online)")
    return p


def search_main(argv=None, prog: str = "python -m tune_lnl.search") -> int:
    """Ctrl-C (SIGINT) or SIGTERM: what runs is stopped (see :func:`tune_lnl.run`), then one line
    ``interrupted: nothing lost; resume with: <this command with --resume>`` and exit code 130
    (SIGTERM: 143), no traceback; a second Ctrl-C only hurries the shutdown."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = search_parser(prog).parse_args(argv)
    try:
        if args.plan:  # trains nothing, writes nothing
            from .api import plan
            print(plan(args.space, data_root=args.data_root, storage_path=args.storage_path, name=args.name,
                       num_samples=args.num_samples, methods=args.methods, settings=args.settings, seeds=args.seeds,
                       resume=args.resume, backend=args.backend, workers=args.workers, address=args.address,
                       paper_only=args.paper_only, smoke=args.smoke,
                       one_study_at_a_time=args.one_study_at_a_time).text(), flush=True)
            return 0
        from .search.interrupt import stop_signals
        with stop_signals(signal.SIGINT, signal.SIGTERM, ending=True):
            from .api import run
            run(args.space, data_root=args.data_root, storage_path=args.storage_path, name=args.name,
                num_samples=args.num_samples, methods=args.methods, settings=args.settings, seeds=args.seeds,
                resume=args.resume, backend=args.backend, workers=args.workers, address=args.address,
                paper_only=args.paper_only, smoke=args.smoke, one_study_at_a_time=args.one_study_at_a_time,
            tracker=args.tracker)
    except TuneLNLError as exc:
        raise _error(exc) from None
    except KeyboardInterrupt as exc:  # (also one before the handlers were installed: nothing started then)
        print("interrupted: nothing lost; resume with: " + resume_command(prog, argv)
              if getattr(exc, "started", False) else
              "interrupted before the experiment started: nothing to resume; run the same command again",
              file=sys.stderr, flush=True)
        return 128 + getattr(exc, "signum", signal.SIGINT)
    return 0


def resume_command(prog: str, argv: list[str]) -> str:
    """The command line that continues an interrupted search: ``prog`` (``python -m
    tune_lnl.search``, ``tune-lnl search``) and the same arguments, quoted for a POSIX shell,
    with ``--resume`` added unless it is there (argparse also takes a prefix such as ``--res``)."""
    given = any(len(a) > 4 and "--resume".startswith(a) for a in argv)
    return f"{prog} {shlex.join(list(argv) + ([] if given else ['--resume']))}"


# -- train --------------------------------------------------------------------------------------
TRAIN_HELP = "ONE training without Ray, from a search space (fixed + paper values) or a best_configs.yaml"


def train_parser(prog: str = "python -m tune_lnl.train") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=TRAIN_HELP)
    ap.add_argument("--config", required=True, help="search-space YAML or best_configs.yaml")
    ap.add_argument("--setting", required=True, help="noise setting name, e.g. sym-0.2")
    ap.add_argument("--method", help="which method, when the file holds several")
    ap.add_argument("--seed", type=int, help="training seed (default: the file's)")
    ap.add_argument("--epochs", type=int, help="number of epochs (default: the file's)")
    ap.add_argument("--data-root", help="dataset folder (default: $TUNE_LNL_DATA, else ./data)")
    ap.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the file's, 'auto')")
    ap.add_argument("--smoke", action="store_true", help="use the space file's smoke budget")
    ap.add_argument("--checkpoint", help="save the final state here (a .pt file)")
    return ap


def train_main(argv=None, prog: str = "python -m tune_lnl.train") -> int:
    """Prints what it trains on, then per epoch the proxy, the test accuracy and the epoch's
    wall time (:func:`tune_lnl.api.train` prints them)."""
    from .api import train
    args = train_parser(prog).parse_args(argv)
    try:
        train(args.config, args.setting, method=args.method, data_root=args.data_root, seed=args.seed,
              epochs=args.epochs, device=args.device, smoke=args.smoke, checkpoint=args.checkpoint)
    except TuneLNLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        print(f"error: {exc} (lower the learning rate or check the config)", file=sys.stderr)
        return 1
    return 0


# -- report, fidelity ---------------------------------------------------------------------------
def report_main(argv=None, prog: str = "python -m tune_lnl.report") -> int:
    from .results.report import main
    return main(argv, prog=prog)


def fidelity_main(argv=None, prog: str = "python -m tune_lnl.fidelity") -> int:
    from .results.fidelity import main
    return main(argv, prog=prog)


# -- methods ------------------------------------------------------------------------------------
METHODS_HELP = "list the available methods (built-ins, installed plugins) with their hyperparameters"


def methods_main(argv=None, prog: str = "tune-lnl methods") -> int:
    """One aligned table per method (key, type, default, allowed values, meaning), or ``--json``:
    ``{method: {hyperparameter: {"default": ..., ...}}}``. A NAME that names no usable method:
    ``error: ...`` naming the available ones, exit 2."""
    import json

    from .methods.listing import as_json, catalogue, table
    ap = argparse.ArgumentParser(prog=prog, description=METHODS_HELP)
    ap.add_argument("names", nargs="*", metavar="NAME",
                    help="only these methods (a built-in or entry-point name, or an import path 'module:Class')")
    ap.add_argument("--json", action="store_true",
                    help='print {method: {hyperparameter: {"default": ..., "type": ..., "meaning": ..., '
                         '"choices" | "low"/"high": ...}}} as one JSON object')
    args = ap.parse_args(argv)
    try:
        entries = catalogue(args.names)
    except TuneLNLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        for entry in entries:
            if entry.error is not None:  # stdout stays one JSON object of the methods that load
                print(f"warning: method {entry.name!r} is left out: {entry.error}", file=sys.stderr)
        print(json.dumps(as_json(entries), indent=2, default=str))  # a plugin's odd default: its text
    else:
        print("\n\n".join(table(entry) for entry in entries))
    return 0


# -- tune-lnl -----------------------------------------------------------------------------------
COMMANDS = {"search": (search_main, SEARCH_HELP), "train": (train_main, TRAIN_HELP),
            "report": (report_main, "build the report (HTML + Markdown + figures) of an experiment folder"),
            "fidelity": (fidelity_main, "proxy fidelity tables (Kendall/Spearman/regret) of an experiment folder"),
            "methods": (methods_main, METHODS_HELP)}


def main(argv=None) -> int:
    """``tune-lnl <command> [options]``: the same commands and flags as ``python -m tune_lnl.<command>``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        print("usage: tune-lnl <command> [options]   (tune-lnl <command> --help for its options)\n\ncommands:\n"
              + "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()),
              file=sys.stdout if argv and argv[0] in ("-h", "--help") else sys.stderr)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    return COMMANDS[command][0](rest, prog=f"tune-lnl {command}")


if __name__ == "__main__":
    raise SystemExit(main())
