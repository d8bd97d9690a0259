"""``python -m tune_lnl.fidelity <experiment>``: proxy fidelity tables of an experiment folder
(:mod:`tune_lnl.results.fidelity`)."""
from .cli import fidelity_main as main

if __name__ == "__main__":
    raise SystemExit(main())
