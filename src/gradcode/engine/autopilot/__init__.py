"""The autopilot: ``auto(n)``, a scheme that learns the cluster while it trains.

Modules: :mod:`.estimator` (per-worker speeds, shared censored delay law, load cost,
failures, drift), :mod:`.predictor` (plans, predicted round time and decoding error,
the convergence model), :mod:`.planner` (candidate space, switching rule),
:mod:`.scheme` (:func:`auto`, :class:`AutoScheme`, :class:`Autopilot`).
"""

from .estimator import ClusterEstimator, kaplan_meier
from .planner import Decision, Planner, group_plan, start_plan
from .predictor import Plan, Prediction, predict, rounds_factor
from .scheme import Autopilot, AutoScheme, auto

__all__ = ["AutoScheme", "Autopilot", "ClusterEstimator", "Decision", "Plan", "Planner",
           "Prediction", "auto", "group_plan", "kaplan_meier", "predict", "rounds_factor",
           "start_plan"]
