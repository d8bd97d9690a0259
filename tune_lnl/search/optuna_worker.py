"""Entry point of a ``--backend optuna`` worker process, started by the driver as
``python -m tune_lnl.search.optuna_worker FD SLOT THREADS DRIVER_PID`` (FD: its end of the
driver's socket pair). A fresh interpreter: the caller's ``__main__`` (a script, stdin, a
notebook) is never imported here. See :func:`tune_lnl.search.optuna_backend.worker_main`."""
import sys

from .optuna_backend import worker_main

if __name__ == "__main__":
    fd, slot, threads, driver = (int(a) for a in sys.argv[1:5])
    worker_main(fd, slot, threads, driver)
