"""Shared plumbing of the GP baselines: input checks, the training loop, inducing points, and
the estimator base class that gives every GP the neural models' ``fit / predict / evaluate``.

The GPyTorch objects themselves (model, likelihood, objective) stay separate inside each
estimator, as in GPyTorch's own examples; this module holds only what all of them repeat.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import gpytorch
import numpy as np
import torch
from tqdm.auto import tqdm

from hvgp.estimator import Estimator, loader_arrays
from hvgp.predict import PredictiveSamples
from hvgp.utils import resolve_device

__all__ = [
    "EarlyStopping",
    "GPEstimator",
    "as_features",
    "as_labels",
    "as_targets",
    "class_labels",
    "kmeans_inducing_points",
    "make_kernel",
    "systematic_resample",
    "train_loop",
]


# ---- input checks ------------------------------------------------------------------------------
def _to_tensor(a: Any, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach()
    if isinstance(a, np.ndarray | list | tuple):
        return torch.as_tensor(np.asarray(a))
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(a).__name__}")


def as_features(
    x: Any, dtype: torch.dtype, device: torch.device, num_features: int | None = None
) -> torch.Tensor:
    """``x`` as a finite ``(N, D)`` floating tensor on ``device`` (clear errors otherwise)."""
    t = _to_tensor(x, "x")
    if t.dim() != 2:
        raise ValueError(
            f"x must have shape (N, D), got {tuple(t.shape)}; use x.reshape(-1, 1) for one feature"
        )
    if t.shape[0] == 0:
        raise ValueError("x is empty (N = 0)")
    if num_features is not None and t.shape[1] != num_features:
        raise ValueError(f"x has {t.shape[1]} features but the model was fitted on {num_features}")
    t = t.to(device=device, dtype=dtype)
    if not torch.isfinite(t).all():
        raise ValueError("x contains NaN or inf")
    return t


def as_targets(y: Any, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Regression targets as a finite ``(N,)`` tensor matching ``n`` inputs."""
    t = _to_tensor(y, "y")
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) to match x, got {tuple(t.shape)}")
    t = t.to(device=device, dtype=dtype)
    if not torch.isfinite(t).all():
        raise ValueError("y contains NaN or inf")
    return t


def as_labels(y: Any, n: int, device: torch.device, num_classes: int | None = None) -> torch.Tensor:
    """Class labels as an ``(N,)`` long tensor with values in ``[0, num_classes)``."""
    t = _to_tensor(y, "y")
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) to match x, got {tuple(t.shape)}")
    if t.is_floating_point():
        if not torch.isfinite(t).all() or (t != t.round()).any():
            raise ValueError("class labels must be integers")
    t = t.long().to(device)
    if (t < 0).any():
        raise ValueError("class labels must be >= 0")
    if num_classes is not None and (t >= num_classes).any():
        raise ValueError(f"class labels must be < num_classes={num_classes}, got {int(t.max())}")
    return t


def class_labels(y: Any, n: int, device: torch.device, num_classes: int | None = None
                 ) -> tuple[torch.Tensor, int]:
    """Labels (see :func:`as_labels`) and the class count (``num_classes`` or max label + 1).

    :raises ValueError: fewer than 2 classes (nothing to classify).
    """
    labels = as_labels(y, n, device, num_classes)
    count = num_classes or int(labels.max()) + 1
    if count < 2:
        raise ValueError("classification needs at least 2 classes")
    return labels, count


# ---- model parts ----------------------------------------------------------------------------
_KERNELS = ("rbf", "matern12", "matern32", "matern52")


def make_kernel(
    kernel: str | gpytorch.kernels.Kernel,
    num_features: int,
    ard: bool = True,
    batch_shape: torch.Size | None = None,
    x: torch.Tensor | None = None,
) -> gpytorch.kernels.Kernel:
    """A scaled RBF / Matérn kernel (ARD when ``ard``), or a deep copy of a given kernel.

    A kernel object is copied so that fitting one estimator twice, or two estimators from the
    same kernel, never share trained hyper-parameters. With training inputs ``x`` the
    length-scales start at the median pairwise distance (the usual heuristic): GPyTorch's
    default of 0.69 makes every pair of points in a 40-dimensional standardised input space
    uncorrelated, and the optimiser then needs thousands of steps to recover.
    """
    if isinstance(kernel, gpytorch.kernels.Kernel):
        return copy.deepcopy(kernel)
    if not isinstance(kernel, str) or kernel.lower() not in _KERNELS:
        raise ValueError(f"kernel must be one of {_KERNELS} or a gpytorch Kernel, got {kernel!r}")
    name = kernel.lower()
    batch_shape = torch.Size() if batch_shape is None else batch_shape
    ard_dims = num_features if ard else None
    if name == "rbf":
        base = gpytorch.kernels.RBFKernel(ard_num_dims=ard_dims, batch_shape=batch_shape)
    else:
        nu = {"matern12": 0.5, "matern32": 1.5, "matern52": 2.5}[name]
        base = gpytorch.kernels.MaternKernel(nu=nu, ard_num_dims=ard_dims, batch_shape=batch_shape)
    if x is not None and x.shape[0] > 1:
        base.lengthscale = median_distance(x)
    return gpytorch.kernels.ScaleKernel(base, batch_shape=batch_shape)


def median_distance(x: torch.Tensor, max_points: int = 1000) -> float:
    """Median Euclidean distance between distinct rows of (the first ``max_points`` of) ``x``."""
    sub = x[:max_points].detach().double()
    d = torch.cdist(sub, sub)
    off = d[~torch.eye(d.shape[0], dtype=torch.bool, device=d.device)]
    value = float(off.median())
    return value if value > 0 else 1.0


def kmeans_inducing_points(x: torch.Tensor, num_inducing: int, seed: int | None) -> torch.Tensor:
    """``num_inducing`` k-means centres of ``x`` (all of ``x`` when it has fewer points).

    k-means spreads inducing points where the data are, the usual SVGP initialisation
    (Hensman et al. 2015); it runs on the CPU with scikit-learn and the result goes back to
    ``x``'s device and dtype.
    """
    from sklearn.cluster import KMeans

    if num_inducing < 1:
        raise ValueError(f"num_inducing must be >= 1, got {num_inducing}")
    if num_inducing >= x.shape[0]:
        return x.clone()
    km = KMeans(n_clusters=num_inducing, n_init=3, random_state=seed)
    km.fit(x.detach().cpu().double().numpy())
    return torch.as_tensor(km.cluster_centers_).to(x)


def systematic_resample(log_weights: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Indices of ``num_samples`` equally weighted draws from a discrete mixture.

    Systematic resampling (one uniform offset) turns a weighted mixture, e.g. DSPP's quadrature
    sites, into the equally weighted samples :class:`PredictiveSamples` holds, with far less
    noise than i.i.d. draws: each component appears ``⌊S·w⌋`` or ``⌈S·w⌉`` times.
    """
    w = torch.softmax(log_weights.detach().double(), -1)
    u = torch.rand((), dtype=w.dtype, device=w.device) + torch.arange(num_samples, device=w.device)
    cdf = torch.cumsum(w, 0) * num_samples
    cdf[-1] = num_samples + 1.0  # guard against round-off at the top
    return torch.searchsorted(cdf, u, right=True)


# ---- training ---------------------------------------------------------------------------------
class EarlyStopping:
    """Stop when the monitored loss has not improved by ``min_delta`` (relative) for
    ``patience`` epochs; remembers the best parameters so they can be restored."""

    def __init__(self, patience: int | None, min_delta: float = 1e-4) -> None:
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {patience}")
        self.patience, self.min_delta = patience, min_delta
        self.best = math.inf
        self.best_state: dict[str, Any] | None = None
        self.bad_epochs = 0

    def step(self, loss: float, modules: list[torch.nn.Module]) -> bool:
        """Record ``loss``; return True when training should stop."""
        if loss < self.best - self.min_delta * max(abs(self.best), 1.0) or self.best_state is None:
            self.best, self.bad_epochs = loss, 0
            self.best_state = {str(i): copy.deepcopy(m.state_dict()) for i, m in enumerate(modules)}
        else:
            self.bad_epochs += 1
        return self.patience is not None and self.bad_epochs >= self.patience

    def restore(self, modules: list[torch.nn.Module]) -> None:
        if self.best_state is not None:
            for i, m in enumerate(modules):
                m.load_state_dict(self.best_state[str(i)])


def train_loop(
    loss_fn: Callable[[tuple[torch.Tensor, ...]], torch.Tensor],
    batches: Callable[[], Iterator[tuple[torch.Tensor, ...]]],
    params: list[torch.nn.Parameter],
    modules: list[torch.nn.Module],
    epochs: int,
    lr: float,
    patience: int | None,
    progress: bool,
    desc: str,
) -> list[float]:
    """Adam on ``loss_fn`` over ``batches()`` for at most ``epochs``; returns epoch-mean losses.

    Early stopping watches the epoch-mean loss (negative mll / ELBO per data point) and restores
    the best parameters. A non-finite loss stops training with an error naming the epoch/step.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    history: list[float] = []
    if epochs == 0 or not params:
        return history
    opt = torch.optim.Adam(params, lr=lr)
    stopper = EarlyStopping(patience)
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        total, count = 0.0, 0
        for step, batch in enumerate(batches()):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{desc}: loss is {loss.item()} at epoch {epoch}, step {step}; try float64, "
                    "a larger jitter, a smaller lr or standardised inputs"
                )
            loss.backward()
            opt.step()
            total += loss.item() * batch[0].shape[0]
            count += batch[0].shape[0]
        history.append(total / count)
        bar.set_postfix(loss=f"{history[-1]:.4f}")
        if stopper.step(history[-1], modules):
            break
    bar.close()
    stopper.restore(modules)
    return history


def minibatches(
    tensors: tuple[torch.Tensor, ...], batch_size: int | None, generator: torch.Generator | None
) -> Callable[[], Iterator[tuple[torch.Tensor, ...]]]:
    """A re-iterable of shuffled minibatches (the whole set when ``batch_size`` is None)."""
    n = tensors[0].shape[0]
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")

    def it() -> Iterator[tuple[torch.Tensor, ...]]:
        if batch_size is None or batch_size >= n:
            yield tensors
            return
        perm = torch.randperm(n, generator=generator).to(tensors[0].device)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            yield tuple(t[idx] for t in tensors)

    return it


# ---- estimator base ------------------------------------------------------------------------------
def _accepts_loader(fit: Callable[..., Any]) -> Callable[..., Any]:
    """``fit(x, y, ...)`` that also takes ``fit(loader, epochs=...)`` (inputs flattened)."""

    @functools.wraps(fit)
    def wrapper(self: Any, x_train: Any, y_train: Any = None, *args: Any, **kw: Any) -> Any:
        kw.pop("val_loader", None)  # a GP has nothing to monitor on validation data
        if kw.pop("resume", None) is not None:
            raise ValueError(f"{type(self).__name__} has no training checkpoint to resume")
        if y_train is None:
            x_train, y_train = loader_arrays(x_train)
        return fit(self, x_train, y_train, *args, **kw)

    return wrapper


class GPEstimator(Estimator):
    """Base of the user-facing GP estimators: device, dtype, numerical settings, evaluation.

    Subclasses implement ``fit(x, y, epochs=...)`` and ``predict``; every ``fit`` also takes
    a loader (``fit(loader, epochs=...)``, inputs flattened) and ``evaluate`` /
    ``predict_loader`` are shared, so a GP has the surface of the neural models.

    :param device: ``"auto" | "cpu" | "cuda[:i]"``; data and model live there.
    :param dtype: float64 by default (Cholesky factorisations of kernel matrices need it).
    :param jitter: diagonal jitter added when a Cholesky factorisation fails
        (:func:`gpytorch.settings.cholesky_jitter`).
    :param max_cholesky_size: up to this many points GPyTorch factorises exactly instead of
        using conjugate gradients (:func:`gpytorch.settings.max_cholesky_size`).
    :param seed: seeds k-means, initialisation and minibatch order (fit is reproducible);
        ``None`` leaves the global RNG as it is.
    :param progress: show tqdm progress bars.
    """

    is_classifier: bool = False
    default_eval_samples: int | None = 64

    def __init__(
        self,
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float64,
        jitter: float | None = None,
        max_cholesky_size: int = 4000,
        seed: int | None = 0,
        progress: bool = False,
    ) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.device = resolve_device(device)
        self.dtype = dtype
        self.jitter = jitter
        self.max_cholesky_size = max_cholesky_size
        self.seed = seed
        self.progress = progress
        self.history_: list[float] = []
        self.num_features_: int | None = None

    # -- helpers for subclasses
    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "fit" in cls.__dict__:
            cls.fit = _accepts_loader(cls.__dict__["fit"])  # type: ignore[method-assign]

    def _settings(self) -> contextlib.ExitStack:
        """GPyTorch numerical settings for this estimator, as one context manager."""
        stack = contextlib.ExitStack()
        stack.enter_context(gpytorch.settings.max_cholesky_size(self.max_cholesky_size))
        if self.jitter is not None:
            stack.enter_context(
                gpytorch.settings.cholesky_jitter(float_value=self.jitter, double_value=self.jitter)
            )
        return stack

    def _rng(self) -> contextlib.AbstractContextManager:
        """Fork torch's RNG and seed it, so fit is reproducible without side effects."""
        if self.seed is None:
            return contextlib.nullcontext()
        devices = [self.device] if self.device.type == "cuda" else []
        stack = contextlib.ExitStack()
        stack.enter_context(torch.random.fork_rng(devices=devices))
        torch.manual_seed(self.seed)
        return stack

    def _generator(self) -> torch.Generator | None:
        return None if self.seed is None else torch.Generator().manual_seed(self.seed)

    def _features(self, x: Any) -> torch.Tensor:
        return as_features(x, self.dtype, self.device, self.num_features_)

    def _standardise(self, y: torch.Tensor, enabled: bool = True) -> torch.Tensor:
        """Regression targets scaled to mean 0 / std 1; the shift and scale are kept in
        ``y_mean_`` / ``y_std_`` (0 and 1 when disabled, one point or constant targets)."""
        zero = torch.zeros((), dtype=y.dtype, device=y.device)
        self.y_mean_ = y.mean() if enabled else zero
        std = y.std() if enabled and y.shape[0] > 1 else zero + 1.0
        self.y_std_ = std if std > 0 else torch.ones_like(std)
        return (y - self.y_mean_) / self.y_std_

    def _check_fitted(self) -> None:
        if self.num_features_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit(x, y) first")

    def _optimise(
        self,
        loss_fn: Callable[[tuple[torch.Tensor, ...]], torch.Tensor],
        batches: Callable[[], Iterator[tuple[torch.Tensor, ...]]],
        epochs: int,
        lr: float,
        patience: int | None,
        num_features: int,
    ) -> None:
        """Adam (early stopping, best state restored) on the trainable parameters of
        ``self.model`` and ``self.likelihood``; then both go to eval mode and the estimator
        counts as fitted for ``num_features`` inputs."""
        modules = [self.model, self.likelihood]
        params = list({id(p): p for m in modules for p in m.parameters() if p.requires_grad}
                      .values())
        self.history_ = train_loop(loss_fn, batches, params, modules, epochs, lr, patience,
                                   self.progress, type(self).__name__)
        for m in modules:
            m.eval()
        self.num_features_ = num_features

    def _chunks(self, x: torch.Tensor, size: int = 1024) -> Iterator[torch.Tensor]:
        yield from x.split(size)

    # -- public surface
    def predict(self, x: Any, num_samples: int | None = 64) -> PredictiveSamples:
        raise NotImplementedError

    def _eval_samples(self, num_samples: int | None) -> int | None:
        return self.default_eval_samples if num_samples is None else num_samples

    def predict_loader(self, loader: Iterable, num_samples: int | None = None,
                       **kw: Any) -> tuple[PredictiveSamples, torch.Tensor]:
        """One prediction over all of ``loader`` (inputs flattened), on the CPU, with targets."""
        x, y = loader_arrays(loader)
        return self.predict(x, num_samples=self._eval_samples(num_samples)).to("cpu"), y

    def evaluate(self, x: Any, y: Any = None, num_samples: int | None = None) -> dict[str, float]:
        """Predict on ``x`` (or a loader, ``y`` omitted) and score against ``y`` with
        :func:`hvgp.metrics.score.score`. ``num_samples`` defaults to what suits the model
        (exact GPs: closed form)."""
        from hvgp.metrics.score import score

        self._check_fitted()
        if y is None:
            return score(*self.predict_loader(x, num_samples))
        samples = self.predict(x, num_samples=self._eval_samples(num_samples))
        labels = _to_tensor(y, "y").to(samples.mean().device)
        if labels.shape[0] != samples.num_points:
            raise ValueError(
                f"y has {labels.shape[0]} points but the predictions have {samples.num_points}")
        return score(samples, labels)

    def run_samples(self, requested: int) -> int | None:
        """A GP always samples its predictive: ``requested`` draws."""
        return requested

    def nonzero(self) -> int:
        """Non-zero parameters of the GPyTorch model (the likelihood's not counted)."""
        return sum(int((p != 0).sum()) for p in self.model.parameters())

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "likelihood": self.likelihood.state_dict()}
