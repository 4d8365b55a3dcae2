"""Cells of notebook 01: a Bernoulli weight mask as a prior over functions (NNGP limit)."""

CELLS = [
    ("md", r"""
# 01 — A random weight mask is a deep Gaussian process

CigL trains a sparse network whose *active* weights are switched off at random every step
(DropConnect with inverted scaling). This notebook looks at that network **before any data**:
draw many random networks, look at the functions they compute, and compare the covariance of
those functions with the analytic infinite-width kernel (NNGP / arc-cosine kernel,
`hvgp.baselines.gp.NNGPKernel`). As the width grows the two meet — a randomly masked network
is (an approximation of) a Gaussian process, and the drop rate $p$ and the density $d$ of the
topology enter the kernel only through one effective weight variance.

Set `HVGP_QUICK=1` to run with small sizes (the test suite does); the code path is the same.
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
import time

import matplotlib.pyplot as plt
import pyro
import torch
from pyro import poutine

from hvgp.baselines.gp import NNGPKernel, effective_weight_var
from hvgp.infer import SparseBNN, mask_site
from hvgp.nn import MLP, masked_layers
from hvgp.sparsity import SparseTopology

QUICK = os.environ.get("HVGP_QUICK") == "1"
plt.rcParams.update({"figure.dpi": 110, "figure.figsize": (6, 3.5)})
torch.manual_seed(0)
NUM_NETS = 300 if QUICK else 2000        # random networks per setting
WIDTHS = (8, 32, 128) if QUICK else (8, 16, 32, 64, 128, 256)
print(f"quick mode: {QUICK}; {NUM_NETS} networks per setting, widths {WIDTHS}")
"""),
    ("md", r"""
## The network as a Pyro program

`SparseBNN.model` is the generative program CigL trains. For every masked layer with
deterministic mask $M$ (the sparse topology) and drop rate $p$ it draws

$$Z \sim \mathrm{Bernoulli}(1-p)\ \text{(site `<layer>.weight_z`)},\qquad
W \sim \mathcal N(0, s^2)\ \text{on the kept weights (site `<layer>.weight`)},$$

and the network uses the weight $W \odot \big(M \odot Z/(1-p) + (1-M)\big)$: kept weights are
rescaled by $1/(1-p)$, dropped ones are zero, and weights outside $M$ are held at exactly 0 by
the topology. (Biases are point estimates in hvgp, neither masked nor sampled; here they are 0.)

For a width-independent limit the weight scale must shrink with the fan-in, as at
initialisation: $w_{ij} \sim \mathcal N(0, \sigma_w^2 / n_\text{in})$ with the *dense* fan-in
$n_\text{in}$. We therefore **condition** the model's weight sites on such draws with
`poutine.condition`, while the random mask $Z$ is drawn by the model itself — what we sample
is exactly the network the trainer runs. A `pyro.plate` of size $S$ stacks $S$ networks into
one vectorised pass.
"""),
    ("code", r"""
D, DEPTH, SIGMA_W2 = 32, 2, 2.0   # input dimension, hidden layers, He weight variance


def masked_mlp(width: int, density: float, p: float, seed: int = 0) -> SparseBNN:
    # A ReLU MLP of masked layers, uniform density in every layer, zero biases.
    torch.manual_seed(seed)
    net = MLP(D, 1, hidden=(width,) * DEPTH)
    for layer in masked_layers(net).values():
        torch.nn.init.zeros_(layer.bias)
    if density < 1:
        SparseTopology(net, 1 - density, method="uniform", seed=seed)
    return SparseBNN(net, "normal", drop_rate=p, noise=1.0)


@torch.no_grad()
def prior_functions(bnn: SparseBNN, x: torch.Tensor, num: int, chunk: int = 50) -> torch.Tensor:
    # (num, N) outputs of num random networks: W from the fan-in-scaled prior, Z from the model.
    outs = []
    for start in range(0, num, chunk):
        s = min(chunk, num - start)
        weights = {
            f"{name}.weight": torch.randn(s, 1, *layer.weight.shape)
            * math.sqrt(SIGMA_W2 / layer.in_features) * layer.weight_mask
            for name, layer in masked_layers(bnn.net).items()
        }
        with pyro.plate("samples", s, dim=-2):
            outs.append(poutine.condition(bnn.model, data=weights)(x))
    return torch.cat(outs)


bnn = masked_mlp(width=64, density=0.5, p=0.3)
trace = poutine.trace(bnn.model).get_trace(torch.randn(4, D))
for name, node in trace.nodes.items():
    if node["type"] == "sample":
        print(f"{name:12s} shape {tuple(node['value'].shape)!s:14s} observed={node['is_observed']}")
z = trace.nodes[mask_site("3")]["value"]
print(f"\nZ of layer '3': fraction kept {float(z.mean()):.3f} (1 - p = 0.7)")
"""),
    ("md", r"""
## Inputs on a circle, and the analytic kernel

Inputs lie on a great circle of radius $\sqrt D$ in $\mathbb R^{32}$, spanned by two random
orthonormal directions, so $x\cdot x'/D = \cos\theta$ depends only on the angle between them.
(Spreading the inputs over many coordinates matters: the first layer's pre-activation is then a
sum of many masked terms and close to Gaussian, which the kernel assumes.)

`NNGPKernel(depth, weight_var, bias_var, keep_prob, density)` implements the recursion

$$K^0(x,x') = \sigma_b^2 + \tilde\sigma_w^2\,\frac{x\cdot x'}{D},\qquad
K^{l+1}(x,x') = \sigma_b^2 + \tilde\sigma_w^2\,\frac{\sqrt{K^l(x,x)K^l(x',x')}}{2\pi}
\big(\sin\theta_l + (\pi-\theta_l)\cos\theta_l\big),$$

with $\cos\theta_l = K^l(x,x')/\sqrt{K^l(x,x)K^l(x',x')}$ and the **effective weight variance**
$\tilde\sigma_w^2 = \sigma_w^2\, d/(1-p)$: a weight $w\,m\,z/(1-p)$ has second moment
$\frac{\sigma_w^2}{n}\cdot d\cdot(1-p)/(1-p)^2$. $Z$ is drawn once per network and shared by
all inputs, as in one forward pass of the model.
"""),
    ("code", r"""
g = torch.Generator().manual_seed(0)
basis = torch.linalg.qr(torch.randn(D, 2, generator=g))[0]
theta = torch.linspace(0, math.pi, 25)


def on_circle(angles: torch.Tensor) -> torch.Tensor:
    return math.sqrt(D) * (torch.cos(angles)[:, None] * basis[:, 0]
                           + torch.sin(angles)[:, None] * basis[:, 1])


X = on_circle(theta)


def kernel(density: float, p: float, bias_var: float = 0.0) -> NNGPKernel:
    return NNGPKernel(DEPTH, weight_var=SIGMA_W2, bias_var=bias_var,
                      keep_prob=1 - p, density=density)


def kernel_matrix(k: NNGPKernel, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return k(x.double()).to_dense()


print("effective weight variance, d = 0.1, p = 0.3:", effective_weight_var(SIGMA_W2, 0.7, 0.1))
"""),
    ("md", r"""
## Empirical covariance vs kernel as the width grows

For each setting $(d, p)$ and width $n$ we sample `NUM_NETS` networks, form the empirical
second-moment matrix $\hat C = \frac1S\sum_s f_s f_s^\top$ over the 25 inputs (the prior mean is
0) and report the relative error $\|\hat C - K\|_F/\|K\|_F$. The grey band is the Monte-Carlo
floor: the same statistic for `NUM_NETS` exact draws from $\mathcal N(0, K)$ (10 repeats), i.e.
what a perfect GP would score with this many samples.
"""),
    ("code", r"""
SETTINGS = [(1.0, 0.0), (1.0, 0.3), (0.1, 0.0), (0.1, 0.3)]   # (density d, drop rate p)


def rel_error(f: torch.Tensor, K: torch.Tensor) -> float:
    C = f.double().T @ f.double() / f.shape[0]
    return float((C - K).norm() / K.norm())


def mc_floor(K: torch.Tensor, num: int, repeats: int = 10) -> tuple[float, float]:
    L = torch.linalg.cholesky(K + 1e-9 * K.diagonal().mean() * torch.eye(len(K), dtype=K.dtype))
    errs = torch.tensor([rel_error(torch.randn(num, len(K), dtype=K.dtype) @ L.T, K)
                         for _ in range(repeats)])
    return float(errs.quantile(0.1)), float(errs.quantile(0.9))


errors, t0 = {}, time.perf_counter()
for d, p in SETTINGS:
    K = kernel_matrix(kernel(d, p), X)
    errors[d, p] = [rel_error(prior_functions(masked_mlp(n, d, p, seed=i), X, NUM_NETS), K)
                    for i, n in enumerate(WIDTHS)]
floor = mc_floor(kernel_matrix(kernel(1.0, 0.0), X), NUM_NETS)  # scale-free: same for all (d, p)
print(f"sampled {len(SETTINGS) * len(WIDTHS) * NUM_NETS} networks in "
      f"{time.perf_counter() - t0:.1f} s; MC floor {floor[0]:.3f}-{floor[1]:.3f}")
for (d, p), e in errors.items():
    print(f"d={d:<4} p={p:<4} " + "  ".join(f"n={n}: {v:.3f}" for n, v in zip(WIDTHS, e)))
"""),
    ("code", r"""
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for (d, p), e in errors.items():
    axes[0].plot(WIDTHS, e, "o-", label=f"d={d}, p={p}")
    axes[1].plot([d * n for n in WIDTHS], e, "o-", label=f"d={d}, p={p}")
for ax, xlabel in zip(axes, ["width n", "active fan-in d·n"]):
    ax.axhspan(*floor, color="grey", alpha=0.3, label="MC floor")
    ax.set(xscale="log", yscale="log", xlabel=xlabel)
axes[0].set_ylabel(r"$\|\hat C - K\|_F / \|K\|_F$")
axes[0].legend(fontsize=8)
axes[0].set_title("kernel vs sampled networks")
axes[1].set_title("the same against active fan-in")
plt.show()
"""),
    ("md", r"""
Dense networks ($d=1$) sit near the Monte-Carlo floor already at small widths (with zero
biases ReLU is positively homogeneous, and second moments propagate almost exactly). A sparse
network needs to be wider: with $d=0.1$ the error is large at small widths (at width 8 a layer
keeps only a handful of weights and the output is almost always exactly 0) and comes down as the
*active* fan-in $d\cdot n$ grows; against $d\cdot n$ (right panel) the curves roughly line up.
A sparse network is a GP in the limit of many active connections per unit, not of many units.
The random mask $Z$ ($p=0.3$) adds some error at the smallest widths but does not change the
picture: its effect on the second moments is absorbed by the $1/(1-p)$ rescaling.

## How $p$ and the density change the kernel

With zero bias variance the whole kernel is multiplied by $(\tilde\sigma_w^2/\sigma_w^2)^{L+1}
= (d/(1-p))^{L+1}$: $p$ and $d$ change the prior's **scale**, not its correlations. With a bias
variance $\sigma_b^2>0$ (left panel, $\sigma_b^2 = 0.1$) the relative weight of bias and
weights shifts, so the correlation between distant inputs changes too. Dots on the right are
the sampled networks' variances at width 128 (they follow the line).
"""),
    ("code", r"""
angles = torch.linspace(0, math.pi, 100)
X_fine = on_circle(angles)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for d, p in [(1.0, 0.0), (1.0, 0.3), (0.3, 0.0), (0.1, 0.0), (0.1, 0.3)]:
    K = kernel_matrix(kernel(d, p, bias_var=0.1), X_fine)
    axes[0].plot(angles, K[0] / K[0, 0], label=f"d={d}, p={p}")
axes[0].set(xlabel=r"angle $\theta$ between inputs", ylabel=r"$K(x,x')/K(x,x)$",
            title=r"correlation, $\sigma_b^2 = 0.1$")
axes[0].legend(fontsize=8)
ps = torch.linspace(0, 0.6, 13)
for d in (1.0, 0.3, 0.1):
    var = [float(kernel_matrix(kernel(d, float(p)), X[:1])[0, 0]) for p in ps]
    line, = axes[1].plot(ps, var, label=f"kernel, d={d}")
    for p in (0.0, 0.3):
        f = prior_functions(masked_mlp(128, d, p), X[:1], NUM_NETS)
        axes[1].plot(p, float(f.pow(2).mean()), "o", color=line.get_color())
axes[1].set(yscale="log", xlabel="drop rate p", ylabel="prior variance K(x, x)",
            title=r"scale $\propto (d/(1-p))^{L+1}$, $\sigma_b^2=0$")
axes[1].legend(fontsize=8)
plt.show()
"""),
    ("md", r"""
## Prior function samples

Functions drawn by random networks (width 128) around the full circle, next to draws from the
GP with the matching kernel. Each row is normalised by the prior standard deviation
$\sqrt{K(x,x)}$ so that the shapes can be compared; the sparse, randomly masked network and
its GP limit produce the same kind of functions.
"""),
    ("code", r"""
full = torch.linspace(0, 2 * math.pi, 120)
X_circle = on_circle(full)
fig, axes = plt.subplots(2, 2, figsize=(10, 5), sharex=True, sharey=True)
for row, (d, p) in enumerate([(1.0, 0.0), (0.1, 0.3)]):
    K = kernel_matrix(kernel(d, p), X_circle)
    scale = K[0, 0].sqrt()
    nets = prior_functions(masked_mlp(128, d, p, seed=1), X_circle, 6) / scale
    L = torch.linalg.cholesky(K / K[0, 0] + 1e-6 * torch.eye(len(K), dtype=K.dtype))
    gp = torch.randn(6, len(K), dtype=K.dtype) @ L.T
    axes[row, 0].plot(full, nets.T, lw=1)
    axes[row, 1].plot(full, gp.T, lw=1)
    axes[row, 0].set_ylabel(f"d={d}, p={p}\n" + r"$f/\sqrt{K(x,x)}$")
axes[0, 0].set_title("random masked networks (width 128)")
axes[0, 1].set_title("GP with the NNGP kernel")
for ax in axes[1]:
    ax.set_xlabel(r"position on the circle $\theta$")
plt.show()
"""),
    ("md", r"""
## Take-aways

- A network with a Bernoulli weight mask is a stochastic function whose covariance is the
  NNGP / arc-cosine kernel at large active fan-in; `NNGPKernel` computes it exactly and the
  sampled networks converge to it (error down to the Monte-Carlo floor).
- Sparsity slows the convergence: what must be large is the number of active inputs per unit.
- $p$ and $d$ enter only through $\tilde\sigma_w^2 = \sigma_w^2 d/(1-p)$; with zero bias they
  only rescale the prior. This is the GP that `NNGPRegressor` / `NNGPClassifier` use as a
  baseline (notebook 05), and the prior whose hierarchical variational posterior CigL fits
  (notebook 02).
"""),
]
