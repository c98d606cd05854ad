"""Machine-learned force fields: the Cartesian-moment model, committees, training, ASE interop.

* :class:`MomentPotential` / :class:`Committee` — the built-in strictly local model
  (``ssehpc/ml/model.py``, ``committee.py``); :func:`load` reads a saved model;
  :func:`resolve_model` maps a shipped model name (``lips-v0``) to its file.
* :func:`train` / :func:`train_main` / :class:`TrainConfig` — training from extxyz / ASE databases.
* :class:`SSEHPCCalculator` — an ASE calculator for any ssehpc potential.
* :class:`ASECalculatorPotential`, :class:`TorchScriptPotential` — drive ssehpc MD with an ASE
  calculator (e.g. CHGNet) or a TorchScript module.
"""

from ssehpc.ml.adapters import ASECalculatorPotential, TorchScriptPotential
from ssehpc.ml.calculator import SSEHPCCalculator
from ssehpc.ml.committee import Committee, force_deviation
from ssehpc.ml.model import ModelSpec, MomentPotential, load
from ssehpc.ml.shipped import SHIPPED_MODELS, resolve_model
from ssehpc.ml.train import TrainConfig, TrainResult, train, train_main

__all__ = [
    "SHIPPED_MODELS",
    "ASECalculatorPotential",
    "Committee",
    "ModelSpec",
    "MomentPotential",
    "SSEHPCCalculator",
    "TorchScriptPotential",
    "TrainConfig",
    "TrainResult",
    "force_deviation",
    "load",
    "resolve_model",
    "train",
    "train_main",
]
