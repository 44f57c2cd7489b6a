"""The PyTorch baseline of the particle step of the two-layer model (`torch_resnet` is the ResNet's).

The same step as gflow's particle solver with the Euler integrator: a mean-field two-layer
network f(x) = (1/m) sum_j a_j sigma(w_j.x + b_j), the loss L = 1/2 sum_i p_i (f(x_i) - y_i)^2
over the same data nodes and weights, its gradient with respect to every particle parameter
by autograd, and one gradient-descent update u_j <- u_j - dt m dL/du_j (= u_j - dt grad V(u_j),
BACKGROUND.md). Written as a PyTorch user would: leaf tensors a, W (and b), float64 like gflow,
torch's default CPU threads, gradients reset to None between steps.
"""
from __future__ import annotations

import numpy as np
import torch

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


class TorchStep:
    """One GD step of m particles u (m, D) = (a, w_1..w_d[, b]) on data (x, p, y)."""

    def __init__(self, u: np.ndarray, x: np.ndarray, p: np.ndarray, y: np.ndarray, dt: float,
                 activation: str = "tanh", bias: bool = False):
        d = x.shape[1]
        t = lambda v: torch.tensor(np.ascontiguousarray(v), dtype=torch.float64)  # noqa: E731
        self.a = t(u[:, 0]).requires_grad_(True)
        self.W = t(u[:, 1:1 + d]).requires_grad_(True)
        self.b = t(u[:, -1]).requires_grad_(True) if bias else None
        self.xt = t(x.T)
        self.p, self.y = t(p), t(y)
        self.sigma = ACTIVATIONS[activation]
        self.m = len(u)
        self.lr = dt * self.m

    def params(self):
        return [self.a, self.W] + ([self.b] if self.b is not None else [])

    def __call__(self) -> None:
        z = self.W @ self.xt
        if self.b is not None:
            z = z + self.b[:, None]
        f = (self.a @ self.sigma(z)) / self.m
        loss = 0.5 * (self.p * (f - self.y) ** 2).sum()
        grads = torch.autograd.grad(loss, self.params())
        with torch.no_grad():
            for param, grad in zip(self.params(), grads):
                param -= self.lr * grad

    def positions(self) -> np.ndarray:
        cols = [self.a.detach().numpy()[:, None], self.W.detach().numpy()]
        if self.b is not None:
            cols.append(self.b.detach().numpy()[:, None])
        return np.concatenate(cols, axis=1)


def threads() -> int:
    return torch.get_num_threads()


def version() -> str:
    return torch.__version__
