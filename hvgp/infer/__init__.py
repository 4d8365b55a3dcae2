"""Inference: the Pyro program (random mask Z, mask-structured guide), SVI trainer, CigL."""

from hvgp.infer.callbacks import (
    Callback,
    Checkpoint,
    MetricsLogger,
    ProgressBar,
    TopologyUpdate,
    WeightAveraging,
)
from hvgp.infer.checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from hvgp.infer.estimator import CigL, RigL
from hvgp.infer.guide import PointMassGuide
from hvgp.infer.likelihood import CategoricalLikelihood, GaussianLikelihood, make_likelihood
from hvgp.infer.model import SparseBNN, mask_site
from hvgp.infer.objective import NegativeELBO
from hvgp.infer.predictive import predictive_samples
from hvgp.infer.prior import GaussianPrior, Prior, prior_scale_from_weight_decay
from hvgp.infer.recipes import AveragingRecipe, OptimRecipe, TopologyRecipe
from hvgp.infer.trainer import NonFiniteLossError, Trainer, hold_dropped_step

__all__ = [
    "AveragingRecipe",
    "Callback",
    "CategoricalLikelihood",
    "Checkpoint",
    "CigL",
    "GaussianLikelihood",
    "GaussianPrior",
    "MetricsLogger",
    "NegativeELBO",
    "NonFiniteLossError",
    "OptimRecipe",
    "PointMassGuide",
    "Prior",
    "ProgressBar",
    "RigL",
    "SparseBNN",
    "TopologyRecipe",
    "TopologyUpdate",
    "Trainer",
    "WeightAveraging",
    "get_rng_state",
    "hold_dropped_step",
    "load_checkpoint",
    "make_likelihood",
    "mask_site",
    "predictive_samples",
    "prior_scale_from_weight_decay",
    "save_checkpoint",
    "set_rng_state",
]
