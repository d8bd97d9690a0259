"""What an experiment produced, read back from its folder: :func:`tune_lnl.run` returns it, and
``tune_lnl.Result.read(folder)`` gives the same for any experiment folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass
class Result:
    #: the experiment folder ``<storage>/<name>``
    path: Path
    #: ``best_configs.yaml``'s ``methods``: method -> setting -> {"config": full run config,
    #: "proxy_best": ..., ...} (selected by the proxy; the paper's values with --paper-only)
    best_configs: dict
    #: ``finals.csv`` as a pandas DataFrame: one row per method, setting and seed (best, best_epoch,
    #: proxy, last, oracle_max, epochs)
    finals: "pandas.DataFrame"  # noqa: F821
    #: ``report/report.html`` (None when the report could not be built)
    report: Path | None

    @classmethod
    def read(cls, folder) -> "Result":
        import pandas as pd
        folder = Path(folder).resolve()
        best = folder / "best_configs.yaml"
        finals = folder / "finals.csv"
        report = folder / "report" / "report.html"
        return cls(path=folder,
                   best_configs=(yaml.safe_load(best.read_text()) or {}).get("methods", {}) if best.exists() else {},
                   finals=pd.read_csv(finals, dtype={"method": str, "setting": str}) if finals.exists()
                   else pd.DataFrame(),
                   report=report if report.exists() else None)

    def best_config(self, method: str, setting: str) -> dict:
        """The full run config selected for ``method`` and ``setting`` (``tune_lnl.train`` runs it)."""
        return self.best_configs[method][setting]["config"]
