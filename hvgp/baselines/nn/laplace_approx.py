"""Last-layer Laplace (Daxberger et al., "Laplace Redux", NeurIPS 2021) on a RigL network.

The network is trained by hvgp's :class:`~hvgp.infer.RigL` estimator (the run's sparsity,
recipe and checkpoints); then ``laplace-torch`` fits a Gaussian posterior over the last linear
layer's weights and bias at the trained (MAP) values, with a Kronecker-factored (KFAC) GGN
Hessian over the training loader, and tunes the prior precision by maximising the Laplace
marginal likelihood (one scalar precision by default), or (``prior_method="val-nll"``) by the
validation NLL of the predictive. Prediction is the
linearised (GLM) predictive: the probit approximation of its softmax for one deterministic
predictive, or ``num_samples`` draws of the logits from their Gaussian.

The mean prediction is the RigL network's (``map_predict``). The last layer's masked
(zero) weights are part of the KFAC posterior as well: KFAC cannot leave entries out, so
their posterior is their prior conditioned through the Kronecker factors, centred at 0.

Install: ``laplace-torch`` declares torchvision (whose wheel pulls another torch) but never
imports it; the project installs it and its two torchvision-declaring dependencies with
``--no-deps`` and lists their real dependencies in the ``laplace`` extra (see the Makefile).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from hvgp.baselines._shared import batch_inputs, check_positive, require_classifier
from hvgp.estimator import Estimator
from hvgp.infer import RigL
from hvgp.predict import PredictiveSamples
from hvgp.registry import register_model

__all__ = ["INSTALL", "LastLayerLaplace", "last_linear_name", "laplace_library"]

#: how to install laplace-torch beside the pinned CPU torch (never its declared torchvision)
INSTALL = ("pip install -e '.[laplace]' && pip install --no-deps laplace-torch==0.3 "
           "backpack-for-pytorch==1.7.1 curvlinops-for-pytorch==3.0.1 (as `make venv` does)")
HESSIANS: tuple[str, ...] = ("kron", "diag", "full")
PRIORS: tuple[str, ...] = ("scalar", "diag")
LINKS: tuple[str, ...] = ("probit", "bridge", "mc")
PRIOR_METHODS: tuple[str, ...] = ("marglik", "val-nll")


def laplace_library() -> Any:
    """The ``laplace`` module of laplace-torch; a missing install says how to add it."""
    try:
        import laplace
    except ImportError as err:
        raise ImportError(f"the laplace baseline needs laplace-torch: {INSTALL}") from err
    return laplace


def last_linear_name(net: nn.Module) -> str:
    """Qualified name of the last ``nn.Linear`` of ``net`` (the layer Laplace is fitted on)."""
    names = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(net).__name__} has no nn.Linear last layer for last-layer "
                         "Laplace")
    return names[-1]


def _choice(name: str, value: Any, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(valid)}; got {value!r}")
    return value


def _nll(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Validation NLL of one grid point, computed afresh. Why a function: laplace-torch's
    default (a running torchmetrics NLL) is never reset between grid points, so its grid
    search compared running means over all points so far and picked the last one."""
    return torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), y)


@register_model("laplace", options=("hessian_structure", "prior_structure", "link_approx",
                                    "prior_method"), needs_val=True,
                help="last-layer KFAC Laplace (laplace-torch) on a trained RigL network")
class LastLayerLaplace(Estimator):
    """A RigL network with a last-layer Laplace posterior, one estimator surface.

    :param net: a classification network of :mod:`hvgp.nn` ending in a linear layer.
    :param sparsity: RigL's global sparsity.
    :param hessian_structure: ``"kron"`` (KFAC), ``"diag"`` or ``"full"``.
    :param prior_structure: marginal-likelihood-tuned prior precision: one (``"scalar"``) or
        one per weight (``"diag"``; not with KFAC). laplace-torch's last-layer posteriors
        take no per-group (``"layerwise"``) prior.
    :param link_approx: softmax approximation of the deterministic predictive.
    :param prior_method: how the prior precision is tuned: ``"marglik"`` (laplace-torch's
        marginal likelihood, as in Laplace Redux) or ``"val-nll"`` (grid search of
        ``grid_size`` log-spaced values in [1e-4, 1e4] for the lowest validation NLL of the
        predictive; needs ``fit(..., val_loader=)``). Why both: on MNIST-1D the marginal
        likelihood picked a precision (3.2) whose predictive was under-confident (mean
        confidence 0.84 at 96 % accuracy; ``benchmarks/laplace_prior.py``).
    :param grid_size: grid points of ``prior_method="val-nll"``.
    :param marglik_steps: Adam steps on the log prior precision.
    :param mc_samples: logit draws when ``link_approx="mc"``.
    :param rigl_kw: everything else goes to :class:`~hvgp.infer.RigL` (recipes, device,
        seed, checkpoint...).
    """

    def __init__(
        self,
        net: nn.Module,
        sparsity: float = 0.9,
        *,
        hessian_structure: str = "kron",
        prior_structure: str = "scalar",
        link_approx: str = "probit",
        prior_method: str = "marglik",
        grid_size: int = 21,
        marglik_steps: int = 100,
        mc_samples: int = 100,
        likelihood: str = "categorical",
        seed: int = 0,
        **rigl_kw: Any,
    ) -> None:
        require_classifier("laplace", likelihood)
        self.hessian_structure = _choice("hessian_structure", hessian_structure, HESSIANS)
        self.prior_structure = _choice("prior_structure", prior_structure, PRIORS)
        self.link_approx = _choice("link_approx", link_approx, LINKS)
        self.prior_method = _choice("prior_method", prior_method, PRIOR_METHODS)
        if hessian_structure == "kron" and prior_structure == "diag":
            raise ValueError("a last-layer KFAC posterior takes a scalar prior precision, "
                             "not prior_structure='diag'")
        check_positive(True, marglik_steps=marglik_steps, mc_samples=mc_samples,
                       grid_size=grid_size)
        self.marglik_steps, self.mc_samples, self.seed = marglik_steps, mc_samples, int(seed)
        self.grid_size = grid_size
        self.base = RigL(net, sparsity, seed=seed, **rigl_kw)
        self.device = self.base.device
        self.la: Any = None
        self.input_shape_: tuple[int, ...] | None = None

    # -- training
    def fit(self, train_loader: Any, epochs: int, resume: Any = None, val_loader: Any = None,
            progress: bool | None = None) -> LastLayerLaplace:
        """Train RigL (or resume its checkpoint), then fit the Laplace posterior on the same
        training loader and tune its prior precision (``prior_method``)."""
        laplace_library()  # fail before training, not after
        if self.prior_method == "val-nll" and val_loader is None:
            raise ValueError("prior_method='val-nll' tunes the prior on validation data: pass "
                             "fit(..., val_loader=) (hvgp train / compare do)")
        self.base.fit(train_loader, epochs, resume=resume, val_loader=val_loader,
                      progress=progress)
        x, _ = next(iter(train_loader))
        self.input_shape_ = tuple(x.shape[1:])
        self.la = self._laplace()
        self.la.fit(train_loader)
        self.tune_prior(val_loader)
        return self

    def tune_prior(self, val_loader: Any = None, method: str | None = None) -> torch.Tensor:
        """(Re-)tune the prior precision of the fitted posterior by ``method`` (default
        ``prior_method``); returns it. The Hessian is kept, so this costs no refit."""
        self._check_fitted()
        method = _choice("prior_method", method or self.prior_method, PRIOR_METHODS)
        kw: dict[str, Any] = {"method": "marglik", "n_steps": self.marglik_steps}
        if method == "val-nll":
            if val_loader is None:
                raise ValueError("prior_method='val-nll' needs a validation loader")
            kw = {"method": "gridsearch", "val_loader": val_loader,
                  "grid_size": self.grid_size, "log_prior_prec_min": -4,
                  "log_prior_prec_max": 4, "loss": _nll}
        with warnings.catch_warnings():  # "by default link_approx is probit": it is set here
            warnings.filterwarnings("ignore", message=".*link_approx.*")
            self.la.optimize_prior_precision(
                pred_type="glm", prior_structure=self.prior_structure,
                link_approx=self.link_approx, **kw)
        self.prior_method = method
        return self.prior_precision

    def _laplace(self) -> Any:
        """An unfitted laplace-torch posterior on the trained network's last layer."""
        net = self.base.model_.eval()
        return laplace_library().Laplace(
            net, "classification", subset_of_weights="last_layer",
            hessian_structure=self.hessian_structure, last_layer_name=last_linear_name(net))

    @property
    def prior_precision(self) -> torch.Tensor:
        """The marginal-likelihood-tuned prior precision (one value, or one per weight)."""
        self._check_fitted()
        return self.la.prior_precision.detach().cpu()

    def _check_fitted(self) -> None:
        if self.la is None:
            raise RuntimeError("LastLayerLaplace is not fitted yet: call fit(loader, epochs) "
                               "first")

    # -- prediction
    def predict(self, x: torch.Tensor, num_samples: int | None = None,
                **kw: Any) -> PredictiveSamples:
        """GLM predictive: the ``link_approx`` softmax of the Gaussian logits (S = 1), or
        ``num_samples`` softmaxed logit draws (seeded by ``seed``): ``(S, N, K)``."""
        self._check_fitted()
        if num_samples is not None:
            check_positive(True, num_samples=num_samples)
        x = batch_inputs(x, self.input_shape_, self.device)
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        parts = []
        for chunk in x.split(1024):
            if num_samples is None:
                probs = self.la(chunk, pred_type="glm", link_approx=self.link_approx,
                                n_samples=self.mc_samples, generator=gen)[None]
            else:
                probs = self.la.predictive_samples(chunk, pred_type="glm",
                                                   n_samples=num_samples, generator=gen)
            parts.append(probs.detach())
        probs = torch.cat(parts, 1)
        return PredictiveSamples(probs=probs / probs.sum(-1, keepdim=True)).to("cpu")

    def map_predict(self, x: torch.Tensor) -> PredictiveSamples:
        """The trained RigL network's own (MAP) predictive at ``x``, for comparison."""
        self._check_fitted()
        return self.base.predict(batch_inputs(x, self.input_shape_, self.device))

    def prediction_nets(self) -> list[nn.Module]:
        return self.base.prediction_nets()

    # -- saving
    def state_dict(self) -> dict[str, Any]:
        """RigL's network and laplace-torch's posterior as plain tensors and values."""
        self._check_fitted()
        post = {k: (v.value if hasattr(v, "value") else v)  # enums as their strings
                for k, v in self.la.state_dict().items()}
        return {"base": self.base.state_dict(), "laplace": post,
                "input_shape": list(self.input_shape_)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base.load_state_dict(state["base"])
        self.la = self._laplace()
        self.la.load_state_dict(state["laplace"])
        self.input_shape_ = tuple(state["input_shape"])

    @property
    def history_(self) -> Any:
        return self.base.history_

    def __repr__(self) -> str:
        return (f"LastLayerLaplace({self.hessian_structure}, prior={self.prior_structure}, "
                f"link={self.link_approx}, base={self.base!r})")
