"""Deep kernel learning (Wilson et al. 2016): an SVGP output layer on a network's features.

The network of :mod:`hvgp.nn` (the 1-D CNN, an MLP...) loses its linear readout; its last
hidden features feed a multi-class SVGP (:class:`hvgp.baselines.gp.svgp.SVGPModel`, one latent
GP per class with a per-class ARD RBF kernel, softmax likelihood as in
:class:`~hvgp.baselines.gp.svgp.SVGPClassifier`). Network, kernel, inducing points and
variational distribution are trained jointly by the variational ELBO, as in GPyTorch's DKL
example, except that the GP layer has its own Adam (``gp_lr``): under the run's SGD at lr 0.1
the variational parameters barely moved in a few epochs (MNIST-1D: 37 % after 4 epochs), while
the network keeps the run's optimizer (SGD, Nesterov, the recipe's schedule; weight decay
on its tensors of 2+ dimensions only).

``sparsity > 0`` gives the feature extractor a static ERK mask (the run's allocation, no
topology updates): a sparse deep kernel at the same non-zero count as the sparse networks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import gpytorch
import torch
from torch import nn
from tqdm.auto import tqdm

import hvgp.infer.estimator  # noqa: F401  (CigL, RigL... register first: model lists start there)
from hvgp.baselines.gp._common import class_labels, kmeans_inducing_points, make_kernel
from hvgp.baselines.gp.svgp import SVGPModel, probs_from_latents, softmax_likelihood
from hvgp.estimator import Estimator
from hvgp.infer.recipes import decay_groups
from hvgp.predict import PredictiveSamples
from hvgp.registry import register_model
from hvgp.utils import resolve_device, seed_everything

__all__ = ["DKLClassifier", "split_readout"]


def split_readout(net: nn.Module) -> tuple[int, int]:
    """Replace the last ``nn.Linear`` of ``net`` by the identity, in place.

    Returns ``(features, outputs)``: the readout's input width (the feature dimension the GP
    sees) and its output width (the number of classes).
    """
    linears = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(net).__name__} has no nn.Linear readout to replace by a GP")
    name, last = linears[-1]
    parent_name, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent_name), child, nn.Identity())
    return last.in_features, last.out_features


@register_model("dkl", kind="network", options=("num_inducing", "gp_lr"),
                help="deep kernel learning: SVGP on the network's last hidden features")
class DKLClassifier(Estimator):
    """SVGP classification on learnt features (deep kernel learning), one estimator surface.

    :param net: a classification network of :mod:`hvgp.nn`; its last linear layer is removed
        (:func:`split_readout`) and its outputs set the number of classes.
    :param sparsity: static ERK sparsity of the feature extractor (0: dense).
    :param num_inducing: inducing points in feature space (k-means of the initial features).
    :param gp_lr: Adam learning rate of the GP layer (kernel, inducing points, variational
        distribution); the network keeps the run's optimizer.
    :param num_likelihood_samples: Monte-Carlo samples of ``f`` in the ELBO's expectation.
    :param num_samples: latent draws of a prediction when none are asked for.
    :param topology, optim: the run's recipes (:mod:`hvgp.infer.recipes`); ``lr`` and
        ``weight_decay`` override the optimizer recipe's.
    :param checkpoint: accepted for the run path; DKL writes no training checkpoint.
    """

    def __init__(
        self,
        net: nn.Module,
        sparsity: float = 0.0,
        *,
        num_inducing: int = 64,
        gp_lr: float = 0.01,
        num_likelihood_samples: int = 8,
        num_samples: int = 64,
        topology: Any = None,
        optim: Any = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        likelihood: str = "categorical",
        device: str | torch.device = "auto",
        seed: int = 0,
        progress: bool = False,
        checkpoint: Any = None,
    ) -> None:
        from hvgp.infer.recipes import OptimRecipe, TopologyRecipe

        if not isinstance(net, nn.Module):
            raise TypeError(f"DKLClassifier needs an nn.Module, got {type(net).__name__}")
        if likelihood != "categorical":
            raise ValueError(f"dkl is a classifier; likelihood={likelihood!r} is not supported")
        for name, value in (("num_inducing", num_inducing), ("num_samples", num_samples),
                            ("num_likelihood_samples", num_likelihood_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not gp_lr > 0:
            raise ValueError(f"gp_lr must be positive, got {gp_lr!r}")
        self.device = resolve_device(device)
        self.seed, self.progress = int(seed), progress
        self.num_inducing, self.gp_lr = num_inducing, float(gp_lr)
        self.num_likelihood_samples, self.num_samples = num_likelihood_samples, num_samples
        optim = optim or OptimRecipe()
        changes = {k: v for k, v in (("lr", lr), ("weight_decay", weight_decay)) if v is not None}
        self.optim = replace(optim, **changes) if changes else optim
        self.num_features, self.num_classes = split_readout(net)
        self.net = net.to(self.device)
        self.topology = ((topology or TopologyRecipe()).topology(self.net, sparsity, self.seed)
                         if sparsity > 0 else None)
        self.gp: SVGPModel | None = None
        self.likelihood: gpytorch.likelihoods.SoftmaxLikelihood | None = None
        self.input_shape_: tuple[int, ...] | None = None
        self.history_: list[float] = []

    # -- inputs
    def _inputs(self, x: Any) -> torch.Tensor:
        """``x`` as a finite float32 batch on the device, of the fitted input shape."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2 or x.shape[0] == 0:
            raise ValueError(f"x must be a non-empty batch (N, ...), got {tuple(x.shape)}")
        if self.input_shape_ is not None and tuple(x.shape[1:]) != self.input_shape_:
            raise ValueError(f"x has inputs of shape {tuple(x.shape[1:])} but the model was "
                             f"fitted on {self.input_shape_}")
        x = x.to(device=self.device, dtype=torch.float32)
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or inf")
        return x

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """The network's last hidden features; an input it cannot take is a ValueError."""
        try:
            return self.net(x)
        except RuntimeError as err:
            raise ValueError(f"inputs of shape {tuple(x.shape[1:])} do not fit "
                             f"{type(self.net).__name__}: {err}") from err

    def _batches(self, loader: Iterable) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """Checked ``(x, y)`` batches of ``loader`` (labels in ``[0, num_classes)``)."""
        for x, y in loader:
            x = self._inputs(x)
            labels, _ = class_labels(y, x.shape[0], self.device, self.num_classes)
            yield x, labels

    def _build(self, loader: Iterable, max_points: int = 1000) -> None:
        """GP and likelihood on the initial features of up to ``max_points`` training points."""
        xs: list[torch.Tensor] = []
        for x, _ in self._batches(loader):
            xs.append(x)
            if sum(map(len, xs)) >= max_points:
                break
        if not xs:
            raise ValueError("the training loader yielded no batches (drop_last=True with "
                             "fewer points than batch_size?)")
        x = torch.cat(xs)[:max_points]
        self.input_shape_ = tuple(x.shape[1:])
        with torch.no_grad():
            feats = self._features(x)
        z = kmeans_inducing_points(feats, self.num_inducing, self.seed)
        covar = make_kernel("rbf", self.num_features, True, torch.Size([self.num_classes]), feats)
        self.gp = SVGPModel(z, self.num_classes, covar).to(self.device)
        self.likelihood = softmax_likelihood(self.num_classes).to(self.device)

    # -- training
    def fit(self, train_loader: Iterable, epochs: int, val_loader: Any = None,
            resume: Any = None, progress: bool | None = None) -> DKLClassifier:
        """Maximise the ELBO jointly over network, kernel and variational parameters."""
        if resume is not None:
            raise ValueError("dkl has no training checkpoint to resume")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if progress is not None:
            self.progress = progress
        seed_everything(self.seed)
        self.net.train()
        self._build(train_loader)
        gp, lik = self.gp, self.likelihood
        num_data = len(train_loader.dataset) if hasattr(train_loader, "dataset") else None
        elbo = gpytorch.mlls.VariationalELBO(lik, gp, num_data=num_data or 1)
        net_opt = self.optim.build_optimizer(
            decay_groups(self.net.parameters(), self.optim.weight_decay, self.optim.decay_1d))
        gp_opt = torch.optim.Adam(list(gp.parameters()) + list(lik.parameters()), lr=self.gp_lr)
        steps = epochs * max(len(train_loader), 1) if hasattr(train_loader, "__len__") else None
        scheduler = self.optim.build_scheduler(net_opt, steps) if steps else None
        self.history_ = []
        for epoch in tqdm(range(epochs), desc="DKL", disable=not self.progress, leave=False):
            self.net.train()
            gp.train()
            lik.train()
            total, count = 0.0, 0
            for step, (x, y) in enumerate(self._batches(train_loader)):
                net_opt.zero_grad(set_to_none=True)
                gp_opt.zero_grad(set_to_none=True)
                with gpytorch.settings.num_likelihood_samples(self.num_likelihood_samples):
                    loss = -elbo(gp(self._features(x)), y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"DKL: loss is {loss.item()} at epoch {epoch}, "
                                             f"step {step}; try a smaller lr")
                loss.backward()
                if self.topology is not None:
                    self.topology.mask_grads_()
                net_opt.step()
                gp_opt.step()
                if self.topology is not None:
                    self.topology.apply_()
                if scheduler is not None:
                    scheduler.step()
                total, count = total + loss.item() * len(y), count + len(y)
            self.history_.append(total / max(count, 1))
        self._eval()
        return self

    def _eval(self) -> None:
        for m in (self.net, self.gp, self.likelihood):
            m.eval()

    # -- prediction
    @torch.no_grad()
    def predict(self, x: torch.Tensor, num_samples: int | None = None,
                **kw: Any) -> PredictiveSamples:
        """Softmax of ``num_samples`` draws of the latent GPs at the features: ``(S, N, C)``."""
        if self.gp is None:
            raise RuntimeError("DKLClassifier is not fitted yet: call fit(loader, epochs) first")
        s = self.num_samples if num_samples is None else num_samples
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        x = self._inputs(x)
        parts = []
        for chunk in x.split(1024):
            f = self.gp(self._features(chunk))  # per-point marginals, (N, C)
            eps = torch.randn(s, *f.mean.shape, device=f.mean.device)
            parts.append(probs_from_latents(self.likelihood, f.mean + f.variance.sqrt() * eps))
        return PredictiveSamples(probs=torch.cat(parts, 1).cpu())

    def prediction_nets(self) -> list[nn.Module]:
        return [self.net]

    def nonzero(self) -> int:
        """Non-zero parameters of the feature network and the GP layer."""
        gp = sum(int((p != 0).sum()) for p in self.gp.parameters()) if self.gp else 0
        return super().nonzero() + gp

    # -- saving
    def state_dict(self) -> dict[str, Any]:
        if self.gp is None:
            raise RuntimeError("DKLClassifier is not fitted yet: nothing to save")
        return {"net": self.net.state_dict(), "gp": self.gp.state_dict(),
                "likelihood": self.likelihood.state_dict(), "input_shape": self.input_shape_}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        z = next(v for k, v in state["gp"].items() if k.endswith("inducing_points"))
        covar = make_kernel("rbf", self.num_features, True, torch.Size([self.num_classes]))
        self.gp = SVGPModel(torch.zeros_like(z), self.num_classes, covar).to(self.device)
        self.likelihood = softmax_likelihood(self.num_classes).to(self.device)
        self.net.load_state_dict(state["net"])
        self.gp.load_state_dict(state["gp"])
        self.likelihood.load_state_dict(state["likelihood"])
        self.input_shape_ = tuple(state["input_shape"])
        self._eval()

    def __repr__(self) -> str:
        return (f"DKLClassifier({type(self.net).__name__} features={self.num_features}, "
                f"classes={self.num_classes}, inducing={self.num_inducing}, "
                f"sparsity={self.sparsity():.3f})")
