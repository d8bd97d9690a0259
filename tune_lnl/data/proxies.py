"""The model-selection proxies: the one registry of their names and what each one means.

A proxy is the held-out accuracy that selects a configuration (and its best epoch); never the
test set. Every run logs every proxy its data offers (``<name>_acc`` per epoch), the one its
run config names (``proxy:``) selects. Everything else reads :data:`PROXIES`: the space-file
check, the datasets, the evaluation loop (:meth:`tune_lnl.methods.base.Method.evaluate`) and the
fidelity tables. A new proxy is one entry here plus the split that makes it (in
:func:`tune_lnl.data.splits.make_noisy_data` and the streamed datasets).
"""
from __future__ import annotations

from dataclasses import dataclass

#: scored every epoch of every run whose data offers the split
EVERY_EPOCH = "every_epoch"
#: scored only in runs where it is the proxy that selects
WHEN_SELECTING = "when_selecting"


@dataclass(frozen=True)
class Proxy:
    name: str
    #: needs the clean labels of the training images (refused where they are unknown, e.g.
    #: real noise without human-checked labels)
    needs_clean_labels: bool
    #: its images are never trained on (a run's two networks are compared on it: ``divergence_<name>``)
    held_out: bool
    #: how its split is made (one line)
    split: str
    #: when it is scored for in-memory data (:data:`EVERY_EPOCH` or :data:`WHEN_SELECTING`)
    in_memory_policy: str
    #: when it is scored for streamed data (each score a pass over its images read from disk)
    streamed_policy: str
    #: what it measures (one line)
    description: str

    def evaluated(self, in_memory: bool, selecting: bool) -> bool:
        """Whether a run scores it each epoch (when its data offers the split): always for
        :data:`EVERY_EPOCH`, only when ``selecting`` (it is the run's proxy) otherwise."""
        return selecting or (self.in_memory_policy if in_memory else self.streamed_policy) == EVERY_EPOCH


#: every proxy, by name, in a fixed order (the order of the logs, ``splits()`` and tables);
#: iterating it gives the names
PROXIES: dict[str, Proxy] = {p.name: p for p in (
    Proxy("noisy_val", needs_clean_labels=False, held_out=True,
          split="val_fraction of the training images, stratified by the noisy label and seeded by noise_seed, "
                "held out of training with their noisy labels (not made when clean_intact selects)",
          in_memory_policy=EVERY_EPOCH, streamed_policy=EVERY_EPOCH,
          description="accuracy against noisy labels: the only held-out set a practitioner has for free"),
    Proxy("clean_val", needs_clean_labels=False, held_out=True,
          split="the dataset's own trusted clean validation split, or clean_val_size training images held out "
                "of training with their original (clean) labels",
          in_memory_policy=EVERY_EPOCH, streamed_policy=EVERY_EPOCH,
          description="accuracy on a small trusted clean set (what a practitioner could afford to label)"),
    Proxy("clean_intact", needs_clean_labels=True, held_out=False,
          split="the training images themselves against their clean labels (when it does not select and there "
                "are many: a fixed seeded sample of them)",
          in_memory_policy=EVERY_EPOCH, streamed_policy=WHEN_SELECTING,
          description="how well the model recovers the clean labels of what it trains on (an analysis tool)"),
)}
