"""The SVI training loop: Pyro's ELBO with a plain torch optimizer, plus callbacks.

Why a plain optimizer (not ``pyro.infer.SVI``): the topology updater reads the *dense*
gradient between ``backward`` and ``step`` and resets the optimizer state of grown weights,
and weights whose random mask Z is 0 must not move at all that step (no gradient, no
momentum, no weight decay), as in the paper's code. One step is::

    loss = -ELBO / N            (Trace_ELBO().differentiable_loss; Z recorded by a messenger)
    loss.backward()             (dense gradients; Z = 0 weights get exactly 0)
    callbacks.on_after_backward (e.g. RigL drop/grow)
    topology.mask_grads_()
    optimizer.step() holding Z = 0 weights and their optimizer state fixed
    topology.apply_()           (weights outside M stay exactly 0)
    scheduler.step()

The *fast* step (default where it is exact: :meth:`NegativeELBO.fast_exact`; see
:mod:`hvgp.infer.objective`) does the same arithmetic with less around it: the loss from
one network pass (Z applied inside the layers, fused cross-entropy), the Gaussian prior's
value added analytically and its gradient ``lambda U`` on kept weights added right after
``backward`` (so callbacks see the same gradients), and the held weights restored by index
gather/scatter on the active weights. Z stays a Pyro site either way (``last_masks``,
outer :class:`SiteRecorder` s). Any Pyro handler around the step (``condition``, ``trace``,
``replay``, ...), another prior, guide or likelihood, an objective that is not a plain
:class:`NegativeELBO`, or more than one distributed rank runs the generic step.
``Trainer(fast=False)`` always runs the generic step; ``last_path`` says which one ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from hvgp.infer.model import SparseBNN, mask_site
from hvgp.infer.objective import FastTerms, NegativeELBO, SiteRecorder
from hvgp.sparsity import SparseTopology
from hvgp.utils import all_finite

__all__ = ["NonFiniteLossError", "SiteRecorder", "Trainer", "hold_dropped_step",
           "hold_dropped_step_indexed"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; names the step and the layers that are non-finite."""

    def __init__(self, step: int, loss: float, layers: Sequence[str]) -> None:
        self.step, self.loss, self.layers = step, loss, list(layers)
        where = ", ".join(self.layers) if self.layers else "no parameter (check the inputs)"
        super().__init__(
            f"non-finite loss {loss} at step {step}; non-finite weights/gradients in: {where}. "
            "Training stopped; the last checkpoint (if any) was left untouched."
        )


@torch.no_grad()
def hold_dropped_step(
    optimizer: torch.optim.Optimizer, held: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> None:
    """``optimizer.step()`` that leaves the entries ``dropped`` of each ``(param, dropped)``
    and their per-weight optimizer state (momentum, Adam moments) exactly as they were.

    Cost: one copy of each held parameter and its state tensors, and one ``where`` each.
    """
    saved = []
    for param, dropped in held:
        state = optimizer.state.get(param, {})
        moments = [v for v in state.values() if torch.is_tensor(v) and v.shape == param.shape]
        tensors = [param, *moments]
        saved += [(t, t.clone(), dropped) for t in tensors]
    optimizer.step()
    for tensor, old, dropped in saved:
        tensor.copy_(torch.where(dropped, old, tensor))


@torch.no_grad()
def hold_dropped_step_indexed(
    optimizer: torch.optim.Optimizer,
    held: Sequence[tuple[torch.Tensor, ...]],
    dense: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
) -> None:
    """:func:`hold_dropped_step` for ``(param, active index, kept)`` triples: the active
    entries with ``kept`` False are held (the ``dense`` pairs as in :func:`hold_dropped_step`).
    A fourth element, the flat indices of those entries (the draw's ``dropped``), saves
    finding them again.

    Cost on the CPU: a gather and a scatter of the held entries only; on other devices a
    gather, ``where`` and scatter of the active entries (no host sync for the count).
    """
    restore: list[Any] = []
    for param, index, kept, *known in held:
        state = optimizer.state.get(param, {})
        tensors = [param, *(v for v in state.values()
                            if torch.is_tensor(v) and v.shape == param.shape)]
        if not all(t.is_contiguous() for t in tensors):
            dropped = torch.zeros(param.numel(), dtype=torch.bool, device=param.device)
            dropped[index[~kept]] = True
            dense = [*dense, (param, dropped.view(param.shape))]
            continue
        if param.device.type == "cpu":
            where = known[0] if known and known[0] is not None else index[~kept]
            restore += [(t.view(-1), where, None, t.view(-1).index_select(0, where))
                        for t in tensors]
        else:
            restore += [(t.view(-1), index, kept, t.view(-1).index_select(0, index))
                        for t in tensors]
    saved = []
    for param, dropped in dense:
        state = optimizer.state.get(param, {})
        moments = [v for v in state.values() if torch.is_tensor(v) and v.shape == param.shape]
        saved += [(t, t.clone(), dropped) for t in (param, *moments)]
    optimizer.step()
    for flat, where, kept, old in restore:
        new = old if kept is None else torch.where(kept, flat.index_select(0, where), old)
        flat.index_copy_(0, where, new)
    for tensor, old, dropped in saved:
        tensor.copy_(torch.where(dropped, old, tensor))


class Trainer:
    """Runs SVI epochs over a loader and calls the callbacks at fixed points.

    :param bnn: the :class:`SparseBNN` (model + guide).
    :param optimizer: any ``torch.optim`` optimizer over the BNN's parameters.
    :param topology: the :class:`~hvgp.sparsity.SparseTopology` (None for a dense net).
    :param scheduler: an LR scheduler stepped once per optimizer step.
    :param callbacks: :class:`~hvgp.infer.callbacks.Callback` objects, called in order.
    :param objective: ``objective(x, y) -> loss``, e.g.
        :class:`~hvgp.infer.objective.NegativeELBO` (default: ``NegativeELBO(bnn)``, which
        reads ``bnn.data_size`` at every call, as ``bnn.loss`` does).
    :param fast: run the fast step where it is exact (see the module docstring);
        ``False``: always the generic Pyro ELBO step.
    """

    def __init__(
        self,
        bnn: SparseBNN,
        optimizer: torch.optim.Optimizer,
        topology: SparseTopology | None = None,
        scheduler: Any = None,
        callbacks: Sequence[Any] = (),
        objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        fast: bool = True,
    ) -> None:
        self.bnn, self.optimizer, self.topology = bnn, optimizer, topology
        self.objective = objective if objective is not None else NegativeELBO(bnn)
        self.fast = bool(fast)
        #: which step ran last: ``"fast"`` or ``"generic"`` (None before the first)
        self.last_path: str | None = None
        self.scheduler = scheduler
        self.callbacks = list(callbacks)
        self.step = 0
        self.epoch = 0
        self.steps_per_epoch: int | None = None
        self.epochs: int | None = None
        self.loader: Any = None
        self.stop = False
        #: the random masks Z of the last step, by site name (read by masked averaging)
        self.last_masks: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        """Where the network's weights are (its first masked layer's)."""
        return self._weights().device

    def _weights(self) -> torch.Tensor:
        """The first masked layer's weight (its device and dtype are the network's; looked
        up without a walk over every module, which costs more than a small step's ops)."""
        layers = getattr(self.bnn, "layers", None)
        if layers:
            return next(iter(layers.values())).weight
        return next(self.bnn.net.parameters())

    def _train_mode(self) -> None:
        """``bnn.train()``, skipped when every module already is in training mode."""
        if not all(m.training for m in self.bnn.modules()):
            self.bnn.train()

    def _emit(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def fit(self, loader: Iterable, epochs: int) -> Trainer:
        """Train until ``epochs`` epochs are complete (continues from ``self.epoch``)."""
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        self.loader, self.epochs = loader, epochs
        self.steps_per_epoch = len(loader)  # type: ignore[arg-type]
        self._emit("on_fit_start")
        while self.epoch < epochs and not self.stop:
            for x, y in loader:
                loss = self.train_step(x, y)
                self._emit("on_step_end", loss)
            self.epoch += 1
            self._emit("on_epoch_end")
        self._emit("on_fit_end")
        return self

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One SVI step; returns the loss (negative ELBO / N) as a float."""
        weights = self._weights()
        device = weights.device
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if x.is_floating_point() and x.dtype != weights.dtype:  # float64 features: cast
            x = x.to(weights.dtype)
        if x.is_floating_point() and not all_finite(x):
            raise ValueError(f"input batch at step {self.step} contains NaN/inf (non-finite) "
                             "values; clean the data set before training")
        self._train_mode()
        self.optimizer.zero_grad(set_to_none=False)
        # the last step's Z go before this step's are drawn: never two sets of weight-sized
        # masks live at once (#17: CigL's peak memory is RigL's)
        self.last_masks = {}
        recorder = SiteRecorder(self.bnn.mask_sites)
        objective = self.objective
        terms: FastTerms | None = None
        try:
            with recorder:
                if self.fast and isinstance(objective, NegativeELBO) and objective.fast_exact():
                    terms = objective.fast_terms(x, y)
                    loss = terms.data
                else:
                    loss = objective(x, y)
        except ValueError as err:  # distribution validation rejects NaN logits before a loss
            bad = self._non_finite_layers(grads=False)
            if bad:
                raise NonFiniteLossError(self.step, float("nan"), bad) from err
            raise
        self.last_path = "generic" if terms is None else "fast"
        value = float(loss.detach() if terms is None else loss.detach() + terms.prior)
        self.last_masks = recorder.values
        if not math.isfinite(value):
            raise NonFiniteLossError(self.step, value, self._non_finite_layers(grads=False))
        loss.backward()
        if terms is not None:
            terms.add_prior_gradient(self.bnn.layers)
        self._emit("on_after_backward")
        if self.topology is not None:
            self.topology.mask_grads_()
        dense, indexed = [], []
        for name, layer in self.bnn.layers.items():
            z = recorder.values.get(mask_site(name))
            if z is None:
                continue
            draw = None if terms is None else terms.draws.get(name)
            if draw is not None and draw[0] is z and z._version == draw[3] \
                    and layer.active_index() is draw[1]:  # mask and Z as drawn: by index
                indexed.append((layer.weight, draw[1], draw[2], draw[4]))
            else:
                dense.append((layer.weight, layer.weight_mask & ~z.bool()))
        if indexed:
            hold_dropped_step_indexed(self.optimizer, indexed, dense)
        else:
            hold_dropped_step(self.optimizer, dense)
        if self.topology is not None:
            self.topology.apply_()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        return value

    def _non_finite_layers(self, grads: bool = True) -> list[str]:
        bad = []
        for name, p in self.bnn.named_parameters():
            if not torch.isfinite(p).all() or (
                grads and p.grad is not None and not torch.isfinite(p.grad).all()
            ):
                bad.append(name.removeprefix("net."))
        return bad

    # ---- checkpoint state ----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs except RNG states (see :mod:`hvgp.infer.checkpoint`)."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "bnn": self.bnn.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "callbacks": [{"type": type(cb).__name__, "state": cb.state_dict()}
                          for cb in self.callbacks],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.bnn.load_state_dict(state["bnn"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        saved = list(state.get("callbacks", []))
        for cb in self.callbacks:  # matched by type, in order; stateless ones may be absent
            kind = type(cb).__name__
            match = next((i for i, entry in enumerate(saved) if entry["type"] == kind), None)
            if match is None:
                if cb.state_dict():
                    raise ValueError(f"checkpoint holds no state for callback {kind}")
                continue
            cb.load_state_dict(saved.pop(match)["state"])
