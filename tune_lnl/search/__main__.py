"""``python -m tune_lnl.search``: the command line of :func:`tune_lnl.cli.search_main`."""
from ..cli import search_main

raise SystemExit(search_main())
