"""``python -m tune_lnl.report <experiment>``: the report of an experiment folder
(:mod:`tune_lnl.results.report`)."""
from .cli import report_main as main

if __name__ == "__main__":
    raise SystemExit(main())
