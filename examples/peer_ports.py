"""Hand-written numpy ports of the peers' own code: the references of gallery sections 15 to 17.

Nothing here imports gflow. Each function is a line-by-line port of the peer's code, vectorised
where the original loops over particles, with the peer's names in the comments.

Rotskoff and Vanden-Eijnden (github rotskoff/neuron-birth-death, `gaussian_example.ipynb`):
units c N(x; y, s2), s2 = 0.5, the target f* = (1/3) sum_k c_k N(x; y_k, s2_k) and the loss
1/2 int (f - f*)^2 dx in closed form,

    F(y)     = int f* N(.; y, s2) dx = (1/3) sum_k c_k N(y; y_k, s2_k + s2)      (their F, dF)
    K(y, y') = int N(.; y, s2) N(.; y', s2) dx = N(y - y'; 0, 2 s2)              (their K, dK)
    E        = |f*|^2 / 2 - mean_j c_j F(y_j) + 1/2 mean_ij c_i c_j K(y_i, y_j)

(`energy`; the notebook's `err` writes |f*|^2 / 2 as 0.206 / 3), gradient descent with
simultaneous updates (`step_charges`, `run_traj`), and birth-death by kill/clone after each step
with probability alpha |c U|, c U = -V = c (F - mean_j c_j K(., y_j)), the population restored to
n by cloning or killing uniformly chosen particles, and plain steps for the last `quench` steps
(`run_traj_scheme1`; no mean of V is subtracted, which does not change the fixed point).

Chizat (github lchizat/2019-sparse-optim-measures, `illustration_reluNN.jl`): `GDfor2NN`, gradient
descent on f(x) = (1/m) sum_i b_i (w_i . x)_+ for 1/2 MSE + (lambda/m) sum_i |(w_i, b_i)|^2, whose
gradient he writes without the 1/m (the mean-field velocity), rows of W = (w_i, b_i).

Chizat (same repository, `illustration_deconv1D.jl`): `PGD_1D`, conic particle gradient descent on
spikes mu = (1/m) sum_i r_i |r_i| delta_{theta_i} for the loss 1/2 |f - f_obs|^2 in the RKHS of
the Dirichlet kernel phi(x) = sum_{k = -nf..nf} exp(ikx), nf = 4, plus lambda |mu|:
r <- r exp(-2 alpha grad_r) (the mirror retraction), theta <- theta - beta grad_theta, with
grad_r = sign(r) (sum_j ss(r_j) phi(theta - theta_j) / m - sum_k ss(r_k^obs) phi(theta - theta_k^obs)) + lambda,
ss(r) = |r| r, and grad_theta the same with phi' (the Wasserstein-Fisher-Rao flow, docs/wfr.md).
"""
from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------- the RBF notebook

S2 = 0.5
#: the target's weights, centres and variances (c_fs, y_fs, s2_fs; f* carries a 1/3)
C_F = np.array([1.0, -2.0, 1.0])
Y_F = np.array([-2.0, 0.0, 2.0])
S2_F = np.array([0.5, 1.0, 0.5])


def _normal(y, mean, var):
    return np.exp(-(y - mean) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var)


def target(x: np.ndarray) -> np.ndarray:
    """f*(x) = (1/3) sum_k c_k N(x; y_k, s2_k) (the notebook's `f`)."""
    return _normal(np.asarray(x)[..., None], Y_F, S2_F) @ C_F / 3


def network(x: np.ndarray, y: np.ndarray, c: np.ndarray) -> np.ndarray:
    """f(x) = mean_j c_j N(x; y_j, s2) (the notebook's `fn`)."""
    return _normal(np.asarray(x)[:, None], y, S2) @ c / len(c)


def _F(y):
    return _normal(y[:, None], Y_F, S2_F + S2) @ C_F / 3


def _dF(y):
    s = S2_F + S2
    return -(_normal(y[:, None], Y_F, s) * (y[:, None] - Y_F) / s) @ C_F / 3


def _K(y):
    d = y[:, None] - y
    return np.exp(-d**2 / (4 * S2)) / (2 * np.sqrt(np.pi * S2))


def _dK(y):
    d = y[:, None] - y
    return -d * np.exp(-d**2 / (4 * S2)) / (4 * S2 * np.sqrt(np.pi * S2))


#: |f*|^2 / 2 in closed form (the notebook's Cf = 0.206 / 3)
HALF_TARGET_NORM = float(C_F @ _normal(Y_F[:, None] - Y_F, 0.0, S2_F[:, None] + S2_F) @ C_F / 18)


def energy(y: np.ndarray, c: np.ndarray) -> float:
    """E = 1/2 int (f - f*)^2 dx of the network of the particles (y_j, c_j)."""
    n = len(c)
    return float(HALF_TARGET_NORM - np.mean(c * _F(y)) + 0.5 * np.mean(c * (_K(y) @ c)) / n)


def step_charges(y: np.ndarray, c: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """One gradient-descent step on (y, c), both from the old values (`step_charges`)."""
    n = len(c)
    y_new = y + dt * (c * _dF(y) - c * (_dK(y) @ c) / n)
    c_new = c + dt * (_F(y) - (_K(y) @ c) / n)
    return y_new, c_new


def run_traj(y, c, steps: int, dt: float, every: int = 1):
    """Gradient descent (`run_traj`): the energies and the particles (y, c) after 0, every,
    2 every, ... steps."""
    y, c = np.array(y, float), np.array(c, float)
    energies, states = [energy(y, c)], [(y, c)]
    for i in range(1, steps + 1):
        y, c = step_charges(y, c, dt)
        if i % every == 0:
            energies.append(energy(y, c))
            states.append((y, c))
    return np.array(energies), states


def run_traj_scheme1(y, c, steps: int, dt: float, alpha: float, quench: int, rng: np.random.Generator,
                     every: int = 1):
    """Gradient descent with the notebook's birth-death (`run_traj_scheme1`) for the first
    steps - quench steps: after each step, particle j is killed (c U_j < 0) or cloned (c U_j > 0)
    with probability alpha |c U_j|, then the population is restored to n by cloning uniformly
    chosen survivors or killing uniformly chosen particles. The energies and particles after
    0, every, 2 every, ... steps."""
    y, c = np.array(y, float), np.array(c, float)
    n = len(c)
    energies, states = [energy(y, c)], [(y, c)]
    for i in range(1, steps + 1):
        y, c = step_charges(y, c, dt)
        if i <= steps - quench:
            acU = alpha * c * (_F(y) - (_K(y) @ c) / n)
            r = rng.random(n)
            kill = (acU < 0) & (r < -acU)
            clone = (acU >= 0) & (r < acU)
            # survivors in order, then the clones (the notebook appends them, then kills)
            y, c = np.concatenate([y[~kill], y[clone]]), np.concatenate([c[~kill], c[clone]])
            delta = int(clone.sum() - kill.sum())
            if delta < 0:
                pick = rng.integers(len(y), size=-delta)
                y, c = np.concatenate([y, y[pick]]), np.concatenate([c, c[pick]])
            elif delta > 0:
                keep = np.sort(rng.permutation(len(y))[delta:])
                y, c = y[keep], c[keep]
        if i % every == 0:
            energies.append(energy(y, c))
            states.append((y, c))
    return np.array(energies), states


# ----------------------------------------------------------------------------- Chizat's ReLU network

def gd_for_2nn(X: np.ndarray, Y: np.ndarray, W_init: np.ndarray, lam: float, stepsize: float, niter: int):
    """`GDfor2NN(X_train, Y_train, W_init, lambda, stepsize, niter)`: W (m, d + 1), rows (w_i, b_i).

    Returns Ws (niter, m, d + 1), Ws[k] the weights after k steps (his Ws[:, :, k + 1]), and the
    train loss at each (his loss_train)."""
    n, d = X.shape
    m = len(W_init)
    W = np.array(W_init, float)
    Ws = np.empty((niter, m, d + 1))
    loss = np.empty(niter)
    for it in range(niter):
        Ws[it] = W
        temp = np.maximum(W[:, :d] @ X.T, 0.0)                     # hidden layer (m x n)
        output = (1 / m) * np.sum(W[:, d:] * temp, axis=0)         # the network (n)
        grad_r = (output - Y) / n
        grad_w1 = (W[:, d:] * (temp > 0)) @ (X * grad_r[:, None]) + 2 * lam * W[:, :d]
        grad_w2 = temp @ grad_r + 2 * lam * W[:, d]
        loss[it] = 0.5 * np.sum((output - Y) ** 2) / n + (lam / m) * np.sum(W**2)
        W = W - stepsize * np.column_stack([grad_w1, grad_w2])
    return Ws, loss


def log_iterations(niter: int, count: int = 100) -> np.ndarray:
    """His plotting grid `iters = Int.(floor.(exp.(range(0, stop = log(niter), length = 100))))`,
    1-based, as the distinct step counts iters - 1."""
    return np.unique(np.floor(np.exp(np.linspace(0.0, np.log(niter), count))).astype(int)) - 1


# ----------------------------------------------------------------------------- Chizat's sparse deconvolution

NF = 4     # his number of frequencies, nf


def dirichlet(x):
    """His phi(x) = real(sum(exp.(im*k*x) for k in -nf:nf)), exp(ikx) as a power of exp(ix)."""
    z = np.exp(1j * np.asarray(x))
    return np.real(sum(z**k for k in range(-NF, NF + 1)))


def dirichlet_der(x):
    """His phi_der(x) = real(sum(im*k*exp.(im*k*x) for k in -nf:nf))."""
    z = np.exp(1j * np.asarray(x))
    return np.real(sum(1j * k * z**k for k in range(-NF, NF + 1)))


def pgd_1d(r, theta, r_obs, theta_obs, lam, alpha, beta, niter):
    """His `PGD_1D(r_init, theta_init, r_obs, theta_obs, lambda, alpha, beta, niter)` with the mirror
    retraction, line by line (his loop over i as matrix products).

    Returns rs, thetas (niter + 1, m) and loss (niter + 1): the particles and his loss
    (a' Kxx a + b' Kyy b - 2 a' Kxy b) / 2 + lambda sum |a|, a = ss(r) / m, b = ss(r_obs), after
    0, 1, ..., niter iterations (his rs[:, k] hold 0..niter - 1; the last row is the state his
    figure's rs[:, end] would reach one step later)."""
    def ss(v):
        return np.abs(v) * v          # the signed square

    r, theta = np.array(r, float), np.array(theta, float)
    r_obs, theta_obs = np.asarray(r_obs, float), np.asarray(theta_obs, float)
    m = len(r)
    b = ss(r_obs)
    Kyy = dirichlet(theta_obs[:, None] - theta_obs[None, :])
    rs, thetas, loss = np.empty((niter + 1, m)), np.empty((niter + 1, m)), np.empty(niter + 1)
    for it in range(niter + 1):
        rs[it], thetas[it] = r, theta
        Kxx = dirichlet(theta[:, None] - theta[None, :])
        Kxy = dirichlet(theta[:, None] - theta_obs[None, :])
        a = ss(r) / m
        loss[it] = (a @ Kxx @ a + b @ Kyy @ b - 2 * a @ Kxy @ b) / 2 + lam * np.sum(np.abs(a))
        if it == niter:
            break
        gradr = np.sign(r) * (Kxx @ ss(r) / m - Kxy @ b) + lam
        gradtheta = np.sign(r) * (dirichlet_der(theta[:, None] - theta[None, :]) @ ss(r) / m
                                  - dirichlet_der(theta[:, None] - theta_obs[None, :]) @ b)
        r = r * np.exp(-2 * alpha * gradr)            # mirror retraction
        theta = theta - beta * gradtheta
    return rs, thetas, loss
