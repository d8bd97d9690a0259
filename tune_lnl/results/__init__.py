"""Results: the experiment folder (:mod:`.runs`; its Optuna journal, repaired when a write was cut
off: :mod:`.journal`), its exports (:mod:`.export`: best_configs.yaml,
finals.csv/md), TensorBoard runs (:mod:`.tensorboard`), proxy fidelity (:mod:`.fidelity`), the
report (:mod:`.report`) and :class:`~.result.Result` (what :func:`tune_lnl.run` returns).

Layer: imports :mod:`tune_lnl.config` and below; never Ray. Everything here reads or writes the
folder only, so the report and fidelity work on any experiment, finished or interrupted.
"""
