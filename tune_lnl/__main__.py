"""``python -m tune_lnl <command>``: the same as the ``tune-lnl`` console script."""
from .cli import main

raise SystemExit(main())
