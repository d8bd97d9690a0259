"""Backward loss correction (Patrini, Rozza, Krishna Menon, Nock, Qu, "Making Deep Neural Networks Robust to Label
Noise: a Loss Correction Approach", CVPR 2017), with T estimated from anchor points of a warm-up network.

Per sample, with ``l(p)_k = -log p_k`` the cross-entropy of each label and ``T[i, j] = p(y~ = j | y = i)``:
``l<-(p, y~) = (T^{-1} l(p))_{y~} = sum_k T^{-1}[y~, k] l(p)_k`` (the paper's backward correction, Theorem 1:
unbiased, ``E_{y~ | y}[l<-(p, y~)] = l(p)_y``). ``p`` is clipped to [1e-7, 1 - 1e-7] before the logarithm as in
the official Keras loss: the negative entries of ``T^{-1}`` would otherwise make the loss unbounded below.

Phases, estimator, oracle and defaults: as ``forward_t`` (trainables/forward_t.py; shared machinery in
:mod:`tune_lnl.methods.transition`). Checked against the official code's numbers:
tests/unit/builtin_methods/test_transition_methods.py.
"""
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.transition import LossCorrection


class BackwardT(LossCorrection):
    """Backward correction (T^-1 l(p))_y~ with an estimated (or oracle) T (Patrini et al., CVPR 2017)."""
    name = "backward_t"
    correction = "backward"


class BackwardTTrainable(MethodTrainable):
    method_cls = BackwardT
