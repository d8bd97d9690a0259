"""Forward loss correction (Patrini, Rozza, Krishna Menon, Nock, Qu, "Making Deep Neural Networks Robust to Label
Noise: a Loss Correction Approach", CVPR 2017), with T estimated from anchor points of a warm-up network.

Per sample, with ``p = softmax(logits)`` and ``T[i, j] = p(y~ = j | y = i)``: ``l->(p, y~) = -log((T^T p)_{y~})``
(the paper's forward correction, Theorem 2: the corrected loss is proper composite, so its minimiser on noisy data
is the clean-data minimiser, with the network's softmax as the clean class posterior). ``T = I`` is cross-entropy.

Phases (0-based epochs; :mod:`tune_lnl.methods.transition` holds the shared machinery): ``[0, warmup)``
cross-entropy on the noisy labels; at epoch ``warmup`` T is estimated by the anchor-point estimator (Sec. 4.2:
``T^[i, j] = p^(y~ = j | x^i)``, ``x^i`` the sample at the 97th ``percentile`` of ``p^(y~ = i | x)``; the
arg-max, ``percentile: 100``, on CIFAR-100), or taken from the setting (``t_source: oracle``, logged as
``t_oracle: 1``); the network is then re-initialised (``retrain``: the official code trains the corrected model
from scratch) and trained with ``l->`` until ``epochs``. The paper's "known T" rows are ``t_source: oracle,
warmup: 0``.

Defaults: the paper's CIFAR-10 setup (official code giorgiop/loss-correction, ``CIFAR10Model``: SGD lr 0.1,
momentum 0.9, weight decay 1e-4, batch 128, 120 epochs per training, so warmup 120 and epochs 240; lr / 10 at
epochs 41 and 81 there, at 50% and 75% of each phase here); ``p`` is clipped to [1e-7, 1 - 1e-7] as in its Keras
loss. Checked against that code's numbers: tests/unit/builtin_methods/test_transition_methods.py.
"""
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.transition import LossCorrection


class ForwardT(LossCorrection):
    """Forward correction -log((T^T p)_y~) with an estimated (or oracle) T (Patrini et al., CVPR 2017)."""
    name = "forward_t"
    correction = "forward"


class ForwardTTrainable(MethodTrainable):
    method_cls = ForwardT
