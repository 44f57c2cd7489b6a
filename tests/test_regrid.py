"""Conservative regridding: exact mass, exact cell averages on nested grids, the common grid."""
from __future__ import annotations

import numpy as np

from gflow.postprocess.regrid import cell_volumes, coarsen_faces, common_grid, regrid, uniform_faces


def test_regrid_keeps_mass_between_unaligned_grids():
    rng = np.random.default_rng(0)
    src = (uniform_faces(-1.0, 2.0, 7), uniform_faces(0.0, 1.0, 5), uniform_faces(-3.0, 3.0, 6))
    # a larger, unaligned, partly non-uniform target box: every source cell lies inside it
    dst = (uniform_faces(-1.3, 2.2, 11), np.array([-0.5, 0.1, 0.2, 0.75, 1.5]), uniform_faces(-3.0, 3.5, 9))
    rho = rng.random((7, 5, 6))
    out = regrid(rho, src, dst)
    assert out.shape == (11, 4, 9) and np.all(out >= 0)
    mass = np.sum(rho * cell_volumes(src))
    assert abs(np.sum(out * cell_volumes(dst)) - mass) < 1e-13 * mass


def test_nested_grids_give_exact_averages_and_refinement_is_exact():
    rng = np.random.default_rng(1)
    coarse = (uniform_faces(0.0, 1.0, 4), uniform_faces(-2.0, 2.0, 3))
    fine = (uniform_faces(0.0, 1.0, 12), uniform_faces(-2.0, 2.0, 6))
    rho = rng.random((4, 3))
    refined = regrid(rho, coarse, fine)
    # the piecewise-constant function is reproduced, and averaging it back returns rho
    assert np.allclose(refined, np.repeat(np.repeat(rho, 3, axis=0), 2, axis=1), rtol=0, atol=1e-14)
    assert np.allclose(regrid(refined, fine, coarse), rho, rtol=0, atol=1e-14)


def test_common_grid_is_the_coarser_grid_over_both_boxes():
    a = (uniform_faces(-4.0, 4.0, 64), uniform_faces(-5.0, 5.0, 128))
    b = (uniform_faces(-4.0, 4.0, 128), uniform_faces(-5.0, 5.0, 32))
    common = common_grid(a, b)
    assert np.allclose(common[0], a[0]) and np.allclose(common[1], b[1])
    wider = common_grid((uniform_faces(-4.0, 4.0, 16),), (uniform_faces(-6.0, 6.0, 24),))
    assert np.allclose(wider[0], uniform_faces(-6.0, 6.0, 24))
    assert np.allclose(coarsen_faces(uniform_faces(0.0, 1.0, 9)), uniform_faces(0.0, 1.0, 5))
