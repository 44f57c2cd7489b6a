"""The PyTorch baseline of the resnet particle step (with `torch_step`, the only modules importing torch).

The same step as gflow's particle solver with the Euler integrator on a `resnet` model: the
ResNet of L layers of M neurons u_lj = (a_lj, w_lj, b_lj), a, w in R^d,

    z_0 = x,   z_{l+1} = z_l + (1/(L M)) sum_j a_lj sigma(w_lj . z_l + b_lj),   f(x) = sum_k z_L[k],

the loss R = 1/2 sum_i p_i (f(x_i) - y_i)^2 over the data nodes and weights, its gradient with
respect to every parameter by autograd, and one gradient-descent update with learning rate
eta = L M dt (docs/resnet.md: forward Euler on the particles is this descent). Written as a
PyTorch user would: leaf tensors a, W (L, M, d) and b (L, M), float64 like gflow, torch's
default CPU threads.
"""
from __future__ import annotations

import numpy as np
import torch

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


class TorchResNetStep:
    """One GD step of the parameters u (L, M, D) = (a_1..a_d, w_1..w_d[, b]) on data (x, p, y)."""

    def __init__(self, u: np.ndarray, x: np.ndarray, p: np.ndarray, y: np.ndarray, dt: float,
                 activation: str = "tanh", bias: bool = False):
        L, M, _ = u.shape
        d = x.shape[1]
        t = lambda v: torch.tensor(np.ascontiguousarray(v), dtype=torch.float64)  # noqa: E731
        self.a = t(u[:, :, :d]).requires_grad_(True)
        self.W = t(u[:, :, d:2 * d]).requires_grad_(True)
        self.b = t(u[:, :, -1]).requires_grad_(True) if bias else None
        self.x, self.p, self.y = t(x), t(p), t(y)
        self.sigma = ACTIVATIONS[activation]
        self.scale = 1.0 / (L * M)
        self.lr = dt * L * M

    def params(self):
        return [self.a, self.W] + ([self.b] if self.b is not None else [])

    def __call__(self) -> None:
        z = self.x
        for l in range(self.a.shape[0]):
            pre = z @ self.W[l].T
            if self.b is not None:
                pre = pre + self.b[l]
            z = z + self.scale * (self.sigma(pre) @ self.a[l])
        loss = 0.5 * (self.p * (z.sum(dim=1) - self.y) ** 2).sum()
        grads = torch.autograd.grad(loss, self.params())
        with torch.no_grad():
            for param, grad in zip(self.params(), grads):
                param -= self.lr * grad

    def parameters(self) -> np.ndarray:
        """u (L, M, D) after the steps taken."""
        cols = [self.a.detach().numpy(), self.W.detach().numpy()]
        if self.b is not None:
            cols.append(self.b.detach().numpy()[:, :, None])
        return np.concatenate(cols, axis=2)


def threads() -> int:
    return torch.get_num_threads()


def version() -> str:
    return torch.__version__
