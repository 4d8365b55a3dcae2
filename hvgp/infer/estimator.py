"""``CigL`` / ``RigL``: the one-minute API (build, ``fit``, ``predict``, ``evaluate``).

>>> import torch
>>> from torch.utils.data import DataLoader, TensorDataset
>>> from hvgp.nn import build_model
>>> x, y = torch.randn(64, 40), torch.randint(0, 3, (64,))
>>> est = CigL(build_model("mlp", (40,), 3, width=0.1), sparsity=0.8, device="cpu")
>>> est = est.fit(DataLoader(TensorDataset(x, y), batch_size=16), epochs=2)
>>> est.predict(x[:5]).probs.shape
torch.Size([1, 5, 3])
>>> round(est.sparsity(), 2)
0.8
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hvgp.data.base import check_training_loader
from hvgp.estimator import Estimator, net_sparsity
from hvgp.infer.callbacks import (
    Callback,
    Checkpoint,
    MetricsLogger,
    ProgressBar,
    TopologyUpdate,
    WeightAveraging,
    loader_generators,
)
from hvgp.infer.checkpoint import load_checkpoint, set_rng_state
from hvgp.infer.model import SparseBNN
from hvgp.infer.objective import NegativeELBO
from hvgp.infer.predictive import predictive_samples, sampled_predictive
from hvgp.infer.prior import GaussianPrior, Prior
from hvgp.infer.recipes import (
    _FLAT,
    DEFAULT_RECIPE,
    AveragingRecipe,
    OptimRecipe,
    Recipe,
    TopologyRecipe,
    apply_options,
    decay_groups,
    get_recipe,
    plain,
)
from hvgp.infer.swag import (
    SWAGMoments,
    SWAGPosterior,
    bn_batches,
    has_batchnorm,
    refit_batchnorm,
)
from hvgp.infer.trainer import Trainer
from hvgp.infer.variational import ResetGrownScales, SparseNormalGuide, VariationalELBO
from hvgp.nn.layers import masked_layers, to_masked
from hvgp.predict import PredictiveSamples
from hvgp.registry import register_model
from hvgp.sparsity import check_sparsity
from hvgp.utils import resolve_device, seed_everything

if TYPE_CHECKING:
    from hvgp.tune import TuneResult

__all__ = ["POSTERIORS", "CigL", "RigL"]

#: ``CigL(posterior=...)``: the averaged point estimate, SWAG on the sparse support, or a
#: learned Gaussian on the active weights (:mod:`hvgp.infer.variational`)
POSTERIORS: tuple[str, ...] = ("point", "swag", "variational")


@register_model("cigl", reads={"drop_rate": "drop_rate", "averaging_start": "average_start",
                              "recipe": "recipe"},
                options=("posterior", "swag_rank", "swag_bn_batches", "sigma_init", "sigma_lr",
                         "analytic_kl"),
                help="CigL: RigL + random mask Z + weight averaging")
class CigL(Estimator):
    """Sparse training with a random mask and weight averaging, as SVI on a Pyro program.

    The network's weights are a point-mass guide at the RigL weights U (mask M from the
    topology updater); each step draws the random mask Z ~ Bernoulli(1 - p) and maximises
    the ELBO (= NLL + weight decay, see :mod:`hvgp.infer.model`). From ``average_start``
    of the epochs on the mask is frozen and one snapshot per epoch is folded into a
    running mean; the averaged sparse model (BatchNorm re-estimated) is what ``predict``
    uses. ``drop_rate=0, averaging=False`` is RigL; ``sparsity=0`` is a dense network.

    The recipe is three objects (:mod:`hvgp.infer.recipes`), taken from the named
    ``recipe`` (default :data:`~hvgp.infer.recipes.DEFAULT_RECIPE`) unless given: ``topology``
    (:class:`TopologyRecipe`: allocation, updater, ΔT, t_end, ``drop_fraction``), ``optim``
    (:class:`OptimRecipe`: optimizer or optimizer factory, weight decay, schedule or
    scheduler callable) and ``averaging`` (:class:`AveragingRecipe`, or ``False``). Their
    fields are also flat keywords (``CigL(net, lr=0.05, delta_t=50, average_start=0.75)``),
    applied on top of the given recipes.

    :param net: a network of :mod:`hvgp.nn` masked layers (plain ``Linear``/``Conv`` layers
        are converted in place).
    :param sparsity: global fraction of zero weights, in [0, 1).
    :param drop_rate: random-mask rate p (float, or dict layer name -> p).
    :param recipe: ``"paper"`` (the released code's training) or ``"legacy"`` (hvgp 0.x's),
        see :data:`~hvgp.infer.recipes.RECIPES`; the recipe objects and flat keywords given
        override its parts.
    :param likelihood: ``"categorical"``, ``"normal"`` (``noise`` fixes its std) or a
        :class:`~hvgp.infer.likelihood.Likelihood`.
    :param prior: weight prior; default ``GaussianPrior.from_weight_decay(weight_decay, N)``
        at ``fit`` (the prior that makes the ELBO / N gradient SGD's weight decay).
    :param guide: ``guide(net)`` builds the guide (default: the point mass at the weights).
    :param device: ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``.
    :param checkpoint: shortcut for a :class:`~hvgp.infer.callbacks.Checkpoint` callback
        every ``checkpoint_every`` epochs (atomic); ``fit(..., resume=path)`` continues it.
    :param progress: shortcut for a :class:`~hvgp.infer.callbacks.ProgressBar` callback (a
        string is its label).
    :param callbacks: further callbacks, called after the built-in ones.
    :param posterior: ``"point"`` (the averaged weights; only Z is random) or ``"swag"``
        (:mod:`hvgp.infer.swag`: the averaging also keeps the second moment and
        ``swag_rank`` deviation columns of the active weights, so ``predict(num_samples=S)``
        samples weights and Z; needs averaging; same training, same mean network).
    :param swag_rank: K deviation columns (0: diagonal SWAG); memory (2 + K) x nnz.
    :param swag_bn_batches: training batches BatchNorm statistics are re-estimated on for
        every SWAG sample (0: keep the mean network's statistics).

    ``posterior="variational"`` (:mod:`hvgp.infer.variational`) trains ``N(U, σ²)`` on the
    active weights (σ per weight, storage 2 x nnz) by the generic Pyro ELBO; averaging still
    averages U, and σ is the final one (the mask is frozen from ``average_start``, so the
    final σ lives on the averaged network's support); ``predict(num_samples=S)`` samples Z
    and the weights.

    :param sigma_init: initial σ of every weight (and of every grown one), variational only.
    :param sigma_lr: learning rate of σ's parameter ρ over the recipe's ``lr`` (the KL's
        gradient per weight is O(1 / N), so ρ needs a larger step than U to move); with SGD
        ρ gets no momentum (with it, 10x the effective step diverged). MNIST-1D MLP, SGD lr
        0.1, N = 4000: 100 left σ at 0.0025 after 20 epochs, 300 reached σ ≈ 0.06 in 30,
        1000 gave a NaN loss at step 238. With Adam, about 1.
    :param analytic_kl: closed-form KL (``TraceMeanField_ELBO``) instead of Pyro's Monte
        Carlo ``log p - log q`` at the sampled weights.
    """

    def __init__(
        self,
        net: nn.Module,
        sparsity: float = 0.9,
        drop_rate: float | Mapping[str, float] = 0.01,
        *,
        likelihood: Any = "categorical",
        noise: float | None = None,
        topology: TopologyRecipe | None = None,
        optim: OptimRecipe | None = None,
        averaging: bool | AveragingRecipe = True,
        recipe: str | Recipe | None = None,
        prior: Prior | None = None,
        guide: Callable[[nn.Module], Any] | None = None,
        device: str | torch.device = "auto",
        seed: int = 0,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        progress: bool | str = False,
        callbacks: Iterable[Callback] = (),
        posterior: str = "point",
        swag_rank: int = 10,
        swag_bn_batches: int = 10,
        sigma_init: float = 1e-3,
        sigma_lr: float = 300.0,
        analytic_kl: bool = True,
        **recipe_options: Any,
    ) -> None:
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        self.posterior = _check_posterior(posterior)
        for key, value in (("swag_rank", swag_rank), ("swag_bn_batches", swag_bn_batches)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key} must be a non-negative int, got {value!r}")
        if swag_rank == 1:
            raise ValueError("swag_rank must be 0 (diagonal) or >= 2 (low rank + diagonal)")
        self.swag_rank, self.swag_bn_batches = swag_rank, swag_bn_batches
        if not (isinstance(sigma_lr, (int, float)) and 0 < sigma_lr < float("inf")):
            raise ValueError(f"sigma_lr must be a positive finite number, got {sigma_lr!r}")
        self.sigma_lr, self.analytic_kl = float(sigma_lr), bool(analytic_kl)
        if self.posterior == "variational":
            if guide is not None:
                raise ValueError("posterior='variational' builds its own guide; drop guide=")
            guide = SparseNormalGuide.builder(drop_rate, sigma_init)
        self.sparsity_target = check_sparsity(sparsity)
        base = get_recipe(DEFAULT_RECIPE if recipe is None else recipe)
        self.recipe = base.name
        recipes = apply_options(
            {"topology": topology or base.topology, "optim": optim or base.optim,
             "averaging": averaging if isinstance(averaging, AveragingRecipe)
             else base.averaging},
            recipe_options, type(self).__name__)
        self.topology_recipe: TopologyRecipe = recipes["topology"]
        self.optim_recipe: OptimRecipe = recipes["optim"]
        self.averaging_recipe: AveragingRecipe | None = (
            recipes["averaging"] if averaging is not False and averaging is not None else None)
        if self.posterior == "swag" and self.averaging_recipe is None:
            raise ValueError("posterior='swag' needs weight averaging (its moments are taken "
                             "over the averaged snapshots); drop averaging=False")
        self.device = resolve_device(device)
        if not masked_layers(net):
            net = to_masked(net)
        self.net = net.to(self.device)
        self.seed = int(seed)
        self.topology = (self.topology_recipe.topology(self.net, self.sparsity_target, seed)
                         if self.sparsity_target > 0 else None)
        self.bnn = SparseBNN(self.net, likelihood, drop_rate, noise=noise, prior=prior,
                             guide=guide).to(self.device)
        self._variational: tuple[nn.Module, SparseBNN] | None = None
        self.prior = prior
        self.checkpoint_path, self.checkpoint_every = checkpoint, checkpoint_every
        self.progress = progress
        self.user_callbacks = list(callbacks)
        self.averaged_: nn.Module | None = None
        self.swag_: SWAGPosterior | None = None
        self._swag_nets: list[nn.Module] = []
        self._bn_loader: Any = None
        self.history_: list[dict[str, Any]] = []
        self.trainer: Trainer | None = None

    @property
    def config(self) -> dict[str, Any]:
        """The recipe as one flat plain dict (saved with checkpoints)."""
        avg = self.averaging_recipe
        return {"recipe": self.recipe, **plain(self.topology_recipe), **plain(self.optim_recipe),
                "averaging": avg is not None,
                "average_start": (avg or AveragingRecipe()).start,
                "average_masked": (avg or AveragingRecipe()).masked}

    # ---- training ------------------------------------------------------------------------
    def _optimizer(self) -> torch.optim.Optimizer:
        """The optimizer: masked weights without decay (the prior decays them), the other
        point estimates of 2+ dimensions with the recipe's weight decay, 1-D ones (biases,
        BatchNorm) without unless ``decay_1d`` (:func:`decay_groups`), likelihood
        parameters without."""
        masked = {id(layer.weight) for layer in self.bnn.layers.values()}
        noise = {id(p) for p in self.bnn.likelihood.parameters()}
        guide = ({id(p) for p in self.bnn.guide.parameters()}
                 if isinstance(self.bnn.guide, nn.Module) else set())
        rest = [p for p in self.bnn.parameters() if id(p) not in masked | noise | guide]
        no_momentum = ({"momentum": 0.0, "nesterov": False}
                       if self.optim_recipe.optimizer == "sgd" else {})
        groups = [
            {"params": [p for p in self.bnn.parameters() if id(p) in masked], "weight_decay": 0.0},
            *decay_groups(rest, self.optim_recipe.weight_decay, self.optim_recipe.decay_1d),
            {"params": [p for p in self.bnn.parameters() if id(p) in noise], "weight_decay": 0.0},
            {"params": [p for p in self.bnn.parameters() if id(p) in guide], "weight_decay": 0.0,
             "lr": self.optim_recipe.lr * self.sigma_lr, **no_momentum},  # the guide's σ: no
        ]  # decay (the KL pulls it to the prior), no momentum (see sigma_lr)
        return self.optim_recipe.build_optimizer([g for g in groups if g["params"]])

    def _callbacks(self, total: int, steps_per_epoch: int, epochs: int,
                   logger: MetricsLogger) -> tuple[list[Callback], WeightAveraging | None]:
        """Topology updates, averaging, logging, checkpoint, progress, then the user's."""
        avg = self.averaging_recipe
        start_epoch = None if avg is None else avg.start_epoch(epochs)
        callbacks: list[Callback] = []
        if self.topology is not None:
            upd = self.topology_recipe.make_updater(self.topology, total, self.seed)
            freeze = None if start_epoch is None else start_epoch * steps_per_epoch
            callbacks.append(TopologyUpdate(upd, freeze_step=freeze))
            if isinstance(self.bnn.guide, SparseNormalGuide):  # grown weights: σ from init
                callbacks.append(ResetGrownScales(self.bnn.guide))
        masked = avg is not None and avg.masked
        averager = (None if start_epoch is None
                    else SWAGMoments(start_epoch, self.swag_rank, masked)
                    if self.posterior == "swag" else WeightAveraging(start_epoch, masked))
        if averager is not None:
            callbacks.append(averager)
        callbacks.append(logger)
        if self.checkpoint_path is not None:
            callbacks.append(Checkpoint(self.checkpoint_path, self.checkpoint_every,
                                        extra={"config": self.config}))
        if self.progress:  # a string progress is the bar's label (e.g. "cigl seed 0 90%")
            label = self.progress if isinstance(self.progress, str) else "train"
            callbacks.append(ProgressBar(total, desc=label))
        return callbacks + self.user_callbacks, averager

    def fit(
        self,
        train_loader: Any,
        epochs: int,
        resume: str | os.PathLike | None = None,
        val_loader: Any = None,
        progress: bool | None = None,
    ) -> CigL:
        """Train for ``epochs`` epochs (or continue a checkpoint with ``resume=path``).

        :param train_loader: yields ``(x, y)`` batches; ``len(train_loader.dataset)`` is N.
        :param val_loader: if given, ``evaluate`` on it after every epoch (in ``history_``).
        :param progress: show a progress bar (overrides the constructor's ``progress``).
        """
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if progress is not None:
            self.progress = bool(progress)
        n = len(train_loader.dataset)
        if n == 0:
            raise ValueError("the training data set is empty: nothing to fit")
        check_training_loader(train_loader, self.net, self.bnn.likelihood.is_classification)
        steps_per_epoch = len(train_loader)
        total = epochs * steps_per_epoch
        if self.prior is None:  # the weight-decay prior depends on N
            self.bnn.prior = GaussianPrior.from_weight_decay(self.optim_recipe.weight_decay, n)
        opt = self._optimizer()
        evaluate = None if val_loader is None else (
            lambda: {f"val_{k}": v for k, v in self.evaluate(val_loader, current=True).items()})
        logger = MetricsLogger(evaluate)
        callbacks, averager = self._callbacks(total, steps_per_epoch, epochs, logger)
        objective = (VariationalELBO(self.bnn, n, self.analytic_kl)
                     if isinstance(self.bnn.guide, SparseNormalGuide)
                     else NegativeELBO(self.bnn, n))
        self.trainer = Trainer(self.bnn, opt, self.topology,
                               self.optim_recipe.build_scheduler(opt, total), callbacks,
                               objective=objective)
        if resume is not None:
            state = load_checkpoint(resume, map_location=self.device)
            self.trainer.load_state_dict(state)
            set_rng_state(state["rng"], loader_generators(train_loader))
        else:
            seed_everything(self.seed)
        self.trainer.fit(train_loader, epochs)
        self.history_ = logger.history
        self.averaged_ = None if averager is None else averager.averaged
        self._variational = None
        if isinstance(averager, SWAGMoments):
            self._set_swag(averager.posterior(self.net), train_loader)
        return self

    @classmethod
    def tune(cls, net: Callable[[], nn.Module], train_loader: Any, val_loader: Any,
             epochs: int, grid: Mapping[str, Iterable[Any]] | None = None,
             seeds: Sequence[int] = (100, 101), select_by: str = "val_nll",
             progress: bool = True, **kw: Any) -> TuneResult:
        """Choose p and T* (or other keywords) on ``val_loader`` by ``select_by``.

        Each grid point is trained on every tuning seed (:func:`hvgp.tune.tune`: lowest mean
        validation NLL wins; no test data are taken). ``net`` builds a fresh network per
        trial; ``kw`` are the other constructor keywords. ``result.best`` holds the choice,
        ``result.table()`` every point.

        :param grid: keyword -> values, default ``{"drop_rate": (0, .005, .01, .05, .1),
            "average_start": (.75, .8, .9)}``.
        """
        from hvgp.tune import DEFAULT_GRID, check_grid, tune

        if isinstance(net, nn.Module) or not callable(net):
            raise TypeError("net must be a factory returning a fresh network (each trial "
                            "trains its own), e.g. lambda: build_model('mlp', (40,), 10)")
        grid = check_grid(grid, ("drop_rate", "average_start", "sparsity", *_FLAT))
        kw.setdefault("device", "cpu")

        def build(params: dict[str, Any], seed: int) -> CigL:
            return cls(net(), seed=seed, **{**kw, **params})

        topology = kw.get("topology") or get_recipe(kw.get("recipe") or DEFAULT_RECIPE).topology
        t_end = kw.get("t_end", topology.t_end)  # starts after it may share a run
        return tune(build, train_loader, val_loader, epochs, grid or DEFAULT_GRID, seeds,
                    select_by, progress, t_end=t_end)

    def _set_swag(self, posterior: SWAGPosterior | None, loader: Any) -> None:
        """Install a SWAG posterior (and the loader its samples' BatchNorm is refitted on)."""
        self.swag_, self._bn_loader, self._swag_nets = posterior, loader, []
        if posterior is not None and posterior.count < 2:
            warnings.warn(f"the SWAG posterior has {posterior.count} snapshot(s): zero "
                          "variance, samples equal the mean; train longer or lower "
                          "average_start", stacklevel=3)

    # ---- prediction ----------------------------------------------------------------------
    @property
    def model_(self) -> nn.Module:
        """The network used for prediction: the averaged one if averaging ran, else current."""
        return self.averaged_ if self.averaged_ is not None else self.net

    def prediction_nets(self) -> list[nn.Module]:
        return [self.model_]

    @property
    def averaged_bnn(self) -> SparseBNN:
        """The Pyro program of the network ``predict`` uses: the averaged weights once
        averaging ran (``bnn`` is the *current*, last-step network), else ``bnn`` itself."""
        return self._bnn_for(current=False)

    def _bnn_for(self, current: bool, posterior: str | None = None) -> SparseBNN:
        """The program on the current or averaged network, with the variational guide when
        ``posterior`` (default: the fitted one) is ``"variational"``, else the point mass."""
        b = self.bnn
        sampled = (self.posterior if posterior is None else posterior) == "variational"
        net = self.net if current or self.averaged_ is None else self.averaged_
        if net is self.net and isinstance(b.guide, SparseNormalGuide) == sampled:
            return b
        if not sampled:
            return SparseBNN(net, b.likelihood, b.drop_rates, prior=b.prior)
        if not isinstance(b.guide, SparseNormalGuide):
            raise ValueError("no variational posterior: fit with posterior='variational' first")
        if self._variational is None or self._variational[0] is not net:
            self._variational = (net, SparseBNN(net, b.likelihood, b.drop_rates, prior=b.prior,
                                                guide=b.guide.bind))
        return self._variational[1]

    def predict(
        self,
        x: torch.Tensor,
        num_samples: int | None = None,
        vectorize: bool | None = None,
        current: bool = False,
        posterior: str | None = None,
    ) -> PredictiveSamples:
        """Predictive samples at ``x``: deterministic (``num_samples=None``, S = 1) or
        ``num_samples`` draws of the random mask Z (looped or vectorised, whichever
        :func:`~hvgp.infer.predictive.choose_vectorize` picks; ``vectorize=`` forces one) and,
        with the SWAG
        posterior, of the weights (the same S weight samples for every call).

        With the variational posterior ``num_samples`` draws sample Z and the weights
        (``N(U, σ²)`` on the active ones) together; ``num_samples=None`` is the mean network.

        :param current: use the current (not averaged) weights (no SWAG sampling).
        :param posterior: override the fitted posterior for this call (``"point"`` on a
            SWAG or variational fit gives plain CigL's prediction from the same training run).
        """
        use = self.posterior if posterior is None else _check_posterior(posterior)
        if use == "swag" and num_samples is not None and not current:
            if not isinstance(num_samples, int) or isinstance(num_samples, bool) \
                    or num_samples < 1:
                raise ValueError(f"num_samples must be None or a positive int, got "
                                 f"{num_samples!r}")
            return sampled_predictive(self.swag_bnns(num_samples), x)
        return predictive_samples(self._bnn_for(current, use), x, num_samples, vectorize)

    def swag_bnns(self, num_samples: int) -> list[SparseBNN]:
        """The first ``num_samples`` SWAG weight samples (seeded by ``seed``, cached, so
        every test batch sees the same S networks), BatchNorm refitted per sample."""
        if self.swag_ is None or self.averaged_ is None:
            raise ValueError("no SWAG posterior: fit with posterior='swag' first")
        if len(self._swag_nets) < num_samples:
            self._swag_nets = self._draw_swag(num_samples)
        b = self.bnn
        return [SparseBNN(net, b.likelihood, b.drop_rates, prior=b.prior)
                for net in self._swag_nets[:num_samples]]

    def _draw_swag(self, num_samples: int) -> list[nn.Module]:
        """``num_samples`` copies of the mean network holding SWAG weight samples."""
        assert self.swag_ is not None and self.averaged_ is not None
        refit = has_batchnorm(self.averaged_) and self.swag_bn_batches > 0
        if refit and self._bn_loader is None:
            warnings.warn("no training loader to re-estimate BatchNorm on (a loaded "
                          "estimator): SWAG samples keep the mean network's statistics",
                          stacklevel=3)
            refit = False
        batches = bn_batches(self._bn_loader, self.swag_bn_batches) if refit else []
        gen = torch.Generator().manual_seed(self.seed)
        nets = []
        for _ in range(num_samples):
            net = copy.deepcopy(self.averaged_)
            with torch.no_grad():
                for name, value in self.swag_.sample(gen).items():
                    net.get_parameter(name).copy_(value)
            nets.append(refit_batchnorm(net, batches) if refit else net.eval())
        return nets

    # ---- introspection ---------------------------------------------------------------------
    def sparsity(self, averaged: bool = True) -> float:
        """Structural sparsity of the prediction network (see
        :func:`hvgp.estimator.net_sparsity`); ``averaged=False``: of the current weights."""
        return net_sparsity(self.model_ if averaged else self.net)

    def state_dict(self) -> dict[str, Any]:
        """The prediction network's parameters, masks and buffers (and, SWAG-fitted, the
        posterior's moments under ``"swag_posterior"``; variational, σ of the active weights
        under ``"variational_posterior"``)."""
        state = self.model_.state_dict()
        if self.swag_ is not None:
            state["swag_posterior"] = self.swag_.state_dict()
        if isinstance(self.bnn.guide, SparseNormalGuide):
            state["variational_posterior"] = self.bnn.guide.posterior_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a prediction network saved by :meth:`state_dict` (it becomes ``net``)."""
        state = dict(state)
        swag = state.pop("swag_posterior", None)
        variational = state.pop("variational_posterior", None)
        if variational is not None and not isinstance(self.bnn.guide, SparseNormalGuide):
            raise ValueError("the state holds a variational posterior: load it into "
                             "CigL(..., posterior='variational')")
        self.net.load_state_dict(state)
        self.averaged_, self._variational = None, None
        if variational is not None:
            self.bnn.guide.load_posterior_state(variational)
        if swag is not None:
            self.averaged_ = self.net
            self._set_swag(SWAGPosterior.from_state_dict(swag), None)

    def __repr__(self) -> str:
        rates = set(self.bnn.drop_rates.values())
        p = rates.pop() if len(rates) == 1 else "per-layer"
        post = "" if self.posterior == "point" else f", posterior={self.posterior!r}"
        return (f"{type(self).__name__}(sparsity={self.sparsity_target}, drop_rate={p}, "
                f"averaging={self.averaging_recipe is not None}{post}, device={self.device})")


def _check_posterior(name: Any) -> str:
    """``name`` if it is one of :data:`POSTERIORS`, else a ValueError listing them."""
    if name not in POSTERIORS:
        raise ValueError(f"posterior must be one of {', '.join(POSTERIORS)}; got {name!r}")
    return name


@register_model("rigl", fixed={"updater": "rigl"}, help="RigL (Evci et al. 2020)")
class RigL(CigL):
    """RigL: :class:`CigL` without the random mask (``drop_rate=0``) and without averaging."""

    def __init__(self, net: nn.Module, sparsity: float = 0.9, **kw: Any) -> None:
        kw.setdefault("drop_rate", 0.0)
        kw.setdefault("averaging", False)
        super().__init__(net, sparsity, **kw)

    def predict(self, x: torch.Tensor, num_samples: int | None = None, *args: Any,
                **kw: Any) -> PredictiveSamples:
        """As :meth:`CigL.predict`; warns when ``num_samples`` draws would all be identical."""
        if num_samples is not None and num_samples > 1 and not self._samples_vary():
            warnings.warn(
                f"{type(self).__name__} has no random mask (drop_rate=0): the {num_samples} "
                "samples are identical copies of the deterministic prediction. For Monte "
                "Carlo samples train CigL (drop_rate > 0; predict(x, num_samples=S) draws the "
                "random mask), mc-dropout or an ensemble", UserWarning, stacklevel=2)
        return super().predict(x, num_samples, *args, **kw)

    def _samples_vary(self) -> bool:
        """Whether S predictive draws differ (a random mask; subclasses add their noise)."""
        return any(self.bnn.drop_rates.values())


register_model("set", fixed={"updater": "set"}, help="SET: random regrowth")(RigL)
register_model("static", fixed={"updater": "static"}, help="static sparse mask")(RigL)
