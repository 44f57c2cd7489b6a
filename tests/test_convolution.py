"""Interaction potentials on the grid: cell integrals of singular kernels and the FFT sum."""
import numpy as np
import pytest

from gflow.models.convolution import GridConvolution, kernel_cell_integrals
from gflow.expr import parse_expression
from gflow.grids import CartesianGrid


def test_log_kernel_cell_integrals_1d():
    """int over [(k - 1/2) h, (k + 1/2) h] of -log|z| in closed form, the singular cell included."""
    h, n = 0.1, 5
    K = kernel_cell_integrals(parse_expression("-log(r)", ["r"]), np.array([h]), (n,))

    def F(z):  # antiderivative of -log|z| for z > 0
        return -(z * np.log(z) - z)

    exact0 = 2 * F(h / 2)
    assert K[0] == pytest.approx(exact0, rel=1e-10)
    for k in range(1, n):
        exact = F((k + 0.5) * h) - F((k - 0.5) * h)
        rel = 1e-10 if k <= 3 else 1e-5    # 2-point Gauss-Legendre far from r = 0
        assert K[k] == pytest.approx(exact, rel=rel)
        assert K[2 * n - k] == pytest.approx(exact, rel=rel)
    assert K[n] == 0.0


def test_log_kernel_singular_cell_2d():
    """int over the square [-h/2, h/2]^2 of -log r: closed form via polar symmetry."""
    h = 0.2
    K = kernel_cell_integrals(parse_expression("-log(r)", ["r"]), np.array([h, h]), (3, 3))
    a = h / 2
    # int_{[-a,a]^2} log r = 4 a^2 (log(a) + log(2)/2 + pi/4 - 3/2)   (known closed form)
    exact = -4 * a * a * (np.log(a) + 0.5 * np.log(2) + np.pi / 4 - 1.5)
    assert K[0, 0] == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("cells", [(17,), (9, 12)])
def test_fft_convolution_equals_direct_sum(cells):
    D = len(cells)
    grid = CartesianGrid(((-2.0, 2.0),) * D, cells)
    W = parse_expression("0.5*r**2 - log(r)", ["r"])
    conv = GridConvolution(W, grid)
    rho = np.random.default_rng(0).random(cells)
    K = kernel_cell_integrals(W, grid.spacing, cells)
    idx = np.stack([i.ravel() for i in np.meshgrid(*[np.arange(n) for n in cells], indexing="ij")], axis=1)
    direct = np.zeros(len(idx))
    flat = rho.ravel()
    for j, target in enumerate(idx):
        offsets = (target - idx) % (2 * np.array(cells))
        direct[j] = flat @ K[tuple(offsets.T)]
    np.testing.assert_allclose(conv(rho).ravel(), direct, rtol=1e-11, atol=1e-12)
    again = conv(2 * rho)   # plans are reused; results do not alias
    np.testing.assert_allclose(again.ravel(), 2 * direct, rtol=1e-11, atol=1e-12)
