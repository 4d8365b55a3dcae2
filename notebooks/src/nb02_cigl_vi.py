"""Cells of notebook 02: CigL's training loss is the ELBO of a hierarchical variational family."""

CELLS = [
    ("md", r"""
# 02 — CigL as variational inference

CigL ("Calibrating the Rigged Lottery", Lei et al., ICLR 2023) adds two things to RigL sparse
training: a **random mask** $Z$ that switches off active weights at random every step, and
**weight averaging** once the topology is frozen. This notebook shows that this recipe is
stochastic variational inference in a Pyro program:

1. the model and the guide as Pyro programs (`poutine.trace`), with the sites $Z$ and $W$
   and the deterministic mask $M$ as guide structure;
2. a numeric check that the ELBO *is* data fit plus weight decay (same values up to a
   constant, same gradients);
3. the deterministic mask as the mode of $q(M\mid U)$;
4. mask exploration during training, RigL vs CigL, recorded by a training `Callback`.
"""),
    ("code", r"""
%matplotlib inline
%config InlineBackend.figure_formats = ["png"]
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
"""),
    ("code", r"""
import math
import os

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch.func import functional_call

from hvgp.data import get_loaders
from hvgp.infer import Callback, CigL, RigL, SparseBNN, mask_site, prior_scale_from_weight_decay
from hvgp.nn import build_model, masked_layers
from hvgp.sparsity import SparseTopology

QUICK = os.environ.get("HVGP_QUICK") == "1"
plt.rcParams.update({"figure.dpi": 110, "figure.figsize": (6, 3.5)})
torch.manual_seed(0)
EPOCHS = 3 if QUICK else 20
"""),
    ("md", r"""
## The variational family

For every weight $w$ of a masked layer (prior $p(w) = \mathcal N(0, s^2)$) the family is

$$q(w \mid Z, U, M) = Z\,\mathcal N(M\odot U, \sigma^2) + (1-Z)\,\mathcal N(0,\sigma^2),\qquad
q(M\mid U) \propto \exp(M\odot|U|)\ \text{on masks with the layer's budget},$$
$$U \sim \mathcal N(V, \sigma^2),\qquad Z \sim \mathrm{Bernoulli}(1-p)\ \text{(no free parameters)},
\qquad \sigma \to 0 .$$

In hvgp (see `hvgp.infer.model` and `hvgp.infer.guide`):

- $Z$ is the model site `<layer>.weight_z`. Because $q(Z) = p(Z)$ its log-densities cancel in the
  ELBO, so it is drawn in the model with its log-density masked out;
- the guide is a point mass $\delta(U)$ at the layer's weight (the $\sigma\to0$ limit), site
  `<layer>.weight`; the model's prior on that site covers only the **kept** weights
  ($M=1, Z=1$);
- $M$ is guide *structure*: the `weight_mask` buffer that the topology engine keeps, with
  weights outside $M$ held at exactly 0;
- the network uses $W\odot\big(M\odot Z/(1-p) + (1-M)\big)$ (inverted DropConnect), and the
  likelihood sits in a data plate of size $N$, so a minibatch term is scaled by $N/B$.
"""),
    ("code", r"""
N, B, P, LAMBDA = 200, 16, 0.2, 1e-2
net = build_model("mlp", (40,), 10, width=32 / 256)        # 40 -> 32 -> 32 -> 10
topology = SparseTopology(net, sparsity=0.8, seed=0)       # ERK allocation of M
bnn = SparseBNN(net, "categorical", drop_rate=P,
                prior_scale=prior_scale_from_weight_decay(LAMBDA, N), data_size=N)
x, y = torch.randn(B, 40), torch.randint(0, 10, (B,))



def describe(fn) -> str:
    # Distribution name with its wrappers, e.g. Independent(Masked(Normal)).
    names = []
    while fn is not None:
        names.append(type(fn).__name__.replace("Distribution", ""))
        fn = getattr(fn, "base_dist", None)
    return "(".join(names) + ")" * (len(names) - 1)


model_trace = poutine.trace(bnn.model).get_trace(x, y)
guide_trace = poutine.trace(bnn.guide).get_trace(x, y)
for title, tr in [("MODEL", model_trace), ("GUIDE", guide_trace)]:
    print(f"{title} sites")
    for name, node in tr.nodes.items():
        if node["type"] == "sample":
            print(f"  {name:10s} {describe(node['fn']):38s} shape "
                  f"{tuple(node['value'].shape)!s:9s} observed={node['is_observed']}")
print("\nDeterministic masks M (buffers, not sites):")
print(topology.summary())
"""),
    ("code", r"""
layer = masked_layers(net)["3"]
M = layer.weight_mask
Z = model_trace.nodes[mask_site("3")]["value"]
U = guide_trace.nodes["3.weight"]["value"]
print(f"layer '3': M density {M.float().mean():.3f}, Z keep rate {Z.mean():.3f} (1 - p = {1 - P})")
print("guide value = the network's parameter, differentiable:",
      torch.equal(U, layer.weight), U.requires_grad)
print("weights outside M are exactly zero:", bool((U[~M] == 0).all()))
kept = M & Z.bool()
print(f"weights in the prior term this draw (M=1 and Z=1): {int(kept.sum())} of {int(M.sum())}")
"""),
    ("md", r"""
## The ELBO is NLL + weight decay

With the point-mass guide, $\log q = 0$, and for a fixed draw of $Z$

$$-\mathrm{ELBO} = \frac{N}{B}\sum_{i\in\text{batch}} -\log p(y_i\mid x_i, W)
+ \sum_{\text{kept } w} \frac{w^2}{2s^2} + \text{const},$$

so with $s^2 = 1/(\lambda N)$ (`prior_scale_from_weight_decay`)

$$-\mathrm{ELBO}/N =
\underbrace{\tfrac1B\textstyle\sum_i -\log p(y_i\mid x_i,W)}_{\text{mean NLL}}
+ \frac{\lambda}{2}\|W_\text{kept}\|^2
+ \underbrace{\tfrac{n_\text{kept}}{N}\log(\sqrt{2\pi}\,s)}_{\text{const}} .$$

Below, Pyro's `Trace_ELBO().differentiable_loss` (with $Z$ fixed by `poutine.condition`) is
compared with the hand-written loss of SGD with weight decay: the value differs by exactly the
constant, and the gradients agree for every parameter.
"""),
    ("code", r"""
zs = {mask_site(n): torch.bernoulli(torch.full(l.weight.shape, 1 - P))
      for n, l in masked_layers(net).items()}
model_z = poutine.condition(bnn.model, data=zs)
elbo_loss = Trace_ELBO(max_plate_nesting=1).differentiable_loss(model_z, bnn.guide, x, y) / N

used, penalty, n_kept = {}, 0.0, 0
for name, l in masked_layers(net).items():
    m, z = l.weight_mask, zs[mask_site(name)]
    used[f"{name}.weight"] = l.weight * torch.where(m, z / (1 - P), torch.ones_like(z))
    penalty = penalty + l.weight[m & z.bool()].pow(2).sum()
    n_kept += int((m & z.bool()).sum())
sgd_loss = F.cross_entropy(functional_call(net, used, (x,)), y) + LAMBDA / 2 * penalty
const = n_kept / N * math.log(math.sqrt(2 * math.pi) * bnn.prior_scale)
print(f"-ELBO/N = {elbo_loss.item():.6f}   NLL + wd = {sgd_loss.item():.6f}   "
      f"difference {elbo_loss.item() - sgd_loss.item():.6f}   predicted const {const:.6f}")

params = dict(net.named_parameters())
g_elbo = torch.autograd.grad(elbo_loss, list(params.values()))
g_sgd = torch.autograd.grad(sgd_loss, list(params.values()))
print(f"\n{'parameter':10s} {'max |grad|':>12s} {'max |diff|':>12s}")
for name, a, b in zip(params, g_elbo, g_sgd):
    print(f"{name:10s} {a.abs().max().item():12.3e} {(a - b).abs().max().item():12.3e}")
"""),
    ("md", r"""
The trainer takes one step of exactly this loss (`bnn.loss(x, y)` draws a fresh $Z$ each
call) with a plain `torch.optim` optimizer; weights with $Z=0$ get zero gradient from both
terms, and the trainer also holds their momentum, as in the paper's code. CigL's training loss
**is** an ELBO of the family above.

## The deterministic mask is the mode of $q(M\mid U)$

$q(M\mid U)\propto\exp(\sum M\odot|U|)$ over masks with $k$ ones is maximised by putting the
ones on the $k$ largest $|U|$. RigL's drop step removes the smallest-magnitude active weights,
i.e. moves $M$ to the mode of $q(M\mid U)$ with a smaller budget; the grow step then spends the
budget on the largest dense gradients (exploration), with new weights starting at 0. Between
updates, weights outside $M$ are exactly zero and active weights are (almost surely) not, so the
mask in use is the top-$k$ of $|U|$ — the point estimate of $q(M\mid U)$. We check this on a
network trained with CigL on MNIST-1D below.

## Mask exploration, RigL vs CigL

A `Callback` sees the trainer after every step; this one records, per layer, which weights
have **ever** been active (the "in-time over-parameterisation" rate of RigL papers) and the
mask at each topology update.
"""),
    ("code", r"""
class MaskExplorer(Callback):
    # Records the fraction of weights ever active, after every optimizer step.

    def on_fit_start(self, trainer) -> None:
        self.ever = {n: m.clone() for n, m in trainer.topology.masks.items()}
        self.steps, self.explored = [], []

    def on_step_end(self, trainer, loss: float) -> None:
        for n, m in trainer.topology.masks.items():
            self.ever[n] |= m
        total = sum(m.numel() for m in self.ever.values())
        self.steps.append(trainer.step)
        self.explored.append(sum(int(m.sum()) for m in self.ever.values()) / total)


train, val, test, info = get_loaders("mnist1d", batch_size=128, seed=0)
common = dict(sparsity=0.9, delta_t=25, lr=0.1, weight_decay=5e-4, device="cpu", seed=0)
runs = {}
for name, cls, extra in [("RigL", RigL, {}), ("CigL", CigL, {"drop_rate": 0.1})]:
    explorer = MaskExplorer()
    est = cls(build_model("mlp", info, width=0.5), callbacks=[explorer], **common, **extra)
    est.fit(train, epochs=EPOCHS)
    runs[name] = (est, explorer)
    print(f"{name}: test accuracy {est.evaluate(test)['accuracy']:.3f}, sparsity "
          f"{est.sparsity():.3f}, weights ever active {explorer.explored[-1]:.3f}")
"""),
    ("code", r"""
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, (_, explorer) in runs.items():
    ax.plot(explorer.steps, explorer.explored, label=name)
ax.axhline(1 - common["sparsity"], color="grey", ls="--", label="density (never rewired)")
ax.set(xlabel="optimizer step", ylabel="fraction of weights ever active",
       title="mask exploration on MNIST-1D (90 % sparse MLP)")
ax.legend()
plt.show()

est = runs["CigL"][0]
for name, layer in masked_layers(est.model_).items():
    w, m = layer.weight.detach(), layer.weight_mask
    top = torch.zeros_like(m).flatten()
    top[w.abs().flatten().topk(int(m.sum())).indices] = True
    print(f"layer {name}: top-k(|U|) == M: {bool(torch.equal(top.view_as(m), m))} "
          f"(k = {int(m.sum())} of {m.numel()})")
"""),
    ("md", r"""
The averaged CigL network keeps exactly the mask it was frozen with (its weights are the mean
of snapshots that are all zero outside $M$), and that mask is the top-$k$ of the averaged
$|U|$: the point estimate of $q(M\mid U)$ under the averaged $U$. How much of the network the
two methods explore depends on the schedule (`delta_t`, `alpha`, `t_end`): the random mask
changes which weights receive gradient at each step, and hence which ones RigL's magnitude
criterion drops; the curves above show how that plays out here.
"""),
    ("md", r"""
### Sampling $q(M\mid U)$ instead of taking its mode

$q(M\mid U)\propto\exp(\sum M\odot|U|)$ on masks with exactly $k$ ones is a *conditional
Bernoulli* distribution, which can be sampled exactly with a dynamic programme over
$e_{i,j} = \sum_{|S|=j,\,S\subseteq\{i..n\}}\exp\sum_{l\in S}|U_l|$ (below). To see how far the
mode is from a typical draw we add a temperature, $q_\tau(M\mid U)\propto\exp(\sum
M\odot|U|/\tau)$ ($\tau=1$ is the family as written; $\tau\to0$ is its mode), and measure the
overlap of sampled masks with the trained mask $M$ on the CigL network's output layer.
"""),
    ("code", r"""
def sample_budget_masks(scores: torch.Tensor, k: int, num: int) -> torch.Tensor:
    # Exact draws of q(M) ∝ exp(sum M * scores) over masks with k ones, shape (num, n).
    a = scores.double().flatten()
    n = a.numel()
    log_e = torch.full((n + 1, k + 1), -math.inf, dtype=torch.float64)
    log_e[n, 0] = 0.0
    for i in range(n - 1, -1, -1):      # log e[i, j] = log(e[i+1, j] + exp(a_i) e[i+1, j-1])
        take = torch.cat([log_e.new_full((1,), -math.inf), a[i] + log_e[i + 1, :-1]])
        log_e[i] = torch.logaddexp(log_e[i + 1], take)
    left = torch.full((num,), k)
    masks = torch.zeros(num, n, dtype=torch.bool)
    log_u = torch.rand(num, n, dtype=torch.float64).log()
    for i in range(n):                  # include item i with prob exp(a_i) e[i+1, j-1] / e[i, j]
        j = left.clamp_min(1)
        log_p = torch.where(left > 0, a[i] + log_e[i + 1, j - 1] - log_e[i, left], -math.inf)
        masks[:, i] = log_u[:, i] < log_p
        left = left - masks[:, i].long()
    return masks


layer = masked_layers(runs["CigL"][0].model_)["5"]
u_abs, M = layer.weight.detach().abs().flatten(), layer.weight_mask.flatten()
k = int(M.sum())
taus = [1.0, 0.1, 0.03, 0.01, 0.003, 0.001]
overlap = [float((sample_budget_masks(u_abs / t, k, 32) & M).sum(1).double().mean()) / k
           for t in taus]
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(taus, overlap, "o-", label="sampled masks")
ax.axhline(k / M.numel(), color="grey", ls="--", label="random mask, same budget")
ax.set(xscale="log", xlabel=r"temperature $\tau$", ylabel="overlap with trained M",
       title=f"q(M | U) on layer '5' (k = {k} of {M.numel()})")
ax.legend(fontsize=8)
plt.show()
print(f"median |U| of active weights: {u_abs[M].median():.3f}")
"""),
    ("md", r"""
The trained weights are small (median $|U|$ printed above), so at $\tau=1$ the distribution
is close to uniform over masks with the budget and a draw shares little more with $M$ than a
random mask does; only as $\tau\to0$ does it collapse onto $M$. Using the mode is a real
approximation — the same kind the $\sigma\to0$ point mass makes for $U$.
"""),
]
