"""The literature cases at smoke size: each study's headline claim, asserted.

Every example in examples/ reproduces a known result of the mean-field theory of two-layer
networks or of aggregation-diffusion equations (docs/gallery.md). Here each one runs through
its own `study` function, at sizes that take seconds, and its claim is checked as a number:
a fitted rate, an ordering of risks, an L1 distance. The `slow` tests repeat the two rate
studies at the sizes of the gallery.
"""
import sys

import numpy as np
import pytest
from conftest import ROOT

import gflow
from gflow.case import case_from_text

sys.path.insert(0, str(ROOT / "examples"))

import aggregation  # noqa: E402
import chizat_relu  # noqa: E402
import langevin  # noqa: E402
import particles_to_pde  # noqa: E402
import peer_ports  # noqa: E402
import random_feature  # noqa: E402
import rbf_birth_death  # noqa: E402
import scaling  # noqa: E402
import sgd_noise  # noqa: E402
import sparse_deconvolution  # noqa: E402

SMALL_2D = ["grid.cells=[48,32]"]


def draws(module, result, tmp_path):
    """The study's report and picture work on its result."""
    module.report(result)
    module.draw(result, tmp_path / "picture.png")
    assert (tmp_path / "picture.png").stat().st_size > 0


def test_mean_field_scaling_converges_and_the_plain_sum_does_not(tmp_path):
    result = scaling.study(tmp_path, [*SMALL_2D, "time.end=1", "time.snapshots=5"],
                           ["solver.particles=10,100,1000"])
    mean_field, conventional = result["curves"]["mean_field"], result["curves"]["conventional"]
    gaps = [c.gap for c in mean_field.values()]
    assert all(c.stopped is None for c in mean_field.values())
    assert gaps[0] > gaps[1] > gaps[2] and -0.8 < result["slope"] < -0.3, (gaps, result["slope"])
    # the plain sum: the gap grows with m, and the same learning rate diverges at m = 1000
    assert conventional[100].gap > conventional[10].gap > gaps[0]
    assert conventional[100].gap > 100 * gaps[1]
    assert conventional[1000].stopped is not None and conventional[1000].stopped <= 0.5
    # and its neurons hardly move (the lazy regime), unlike the mean-field ones
    assert conventional[100].moved < 0.3 * mean_field[100].moved
    draws(scaling, result, tmp_path)


def test_particles_converge_to_the_pde_at_the_monte_carlo_rate(tmp_path):
    # the grid reference at 96 x 64 is within 4e-4 of the finer ones in risk at t = 1
    result = particles_to_pde.study(tmp_path, ["grid.cells=[96,64]", "time.end=1", "time.snapshots=3"],
                                    ["solver.particles=100,400,1600", "solver.seed=0,1,2,3,4,5,6,7"])
    for name, rate in result["slopes"].items():
        mean = result[name][0]
        assert mean[0] > mean[-1] and -0.85 < rate < -0.3, (name, mean, rate)
    assert result["W1_a"][0][-1] < 0.03 and result["risk"][0][-1] < 0.01
    draws(particles_to_pde, result, tmp_path)


def test_sgd_fluctuation_falls_like_batch_to_the_minus_half(tmp_path):
    result = sgd_noise.study(tmp_path, ["grid.cells=[24,16]", "time.end=2", "time.snapshots=21"],
                             ["solver.particles=200", "solver.batch=0,1,4,16,64", "solver.seed=0,1"])
    mean = result["rms"][0]
    assert np.all(np.diff(mean) < 0), mean
    assert -0.75 < result["slope"] < -0.3, result["slope"]
    draws(sgd_noise, result, tmp_path)


def test_random_features_move_along_a_only_and_stop_higher(tmp_path):
    result = random_feature.study(tmp_path, [*SMALL_2D, "time.end=3", "time.snapshots=4"])
    two_layer, features = result["two-layer"], result["random features"]
    assert features["w_moved"] < 1e-12 and two_layer["w_moved"] > 0.3
    assert features["a_moved"] > 0.3
    assert features["risk"] > 1.5 * two_layer["risk"]
    draws(random_feature, result, tmp_path)


def test_langevin_reaches_the_gibbs_fixed_point_at_both_temperatures(tmp_path):
    coarse = langevin.study(tmp_path / "32", ["grid.cells=[32,32]", "time.end=8", "time.snapshots=5"])
    assert sorted(coarse) == [0.1, 0.3]
    for T, r in coarse.items():
        assert r["residual"][-1] < 0.05 * r["residual"][0] and r["residual"][-1] < 0.05, (T, r["residual"])
    # the hotter fixed point is the wider one
    assert coarse[0.3]["std_a"] > 1.4 * coarse[0.1]["std_a"] and coarse[0.3]["std_w"] > 1.4 * coarse[0.1]["std_w"]
    # what is left is the grid's error: second order, about 4x smaller on a grid twice as fine
    fine = langevin.study(tmp_path / "64", ["grid.cells=[64,64]", "time.end=8", "time.snapshots=2"],
                          ["regularization.temperature=0.3"])
    assert fine[0.3]["residual"][-1] < coarse[0.3]["residual"][-1] / 3
    draws(langevin, coarse, tmp_path)


def test_aggregation_reaches_the_semicircle_and_the_disk(tmp_path):
    result = aggregation.study(tmp_path, ["grid.cells=100", "time.end=6", "time.snapshots=4"], ["semicircle"])
    semicircle = result["semicircle"]
    assert semicircle["L1"] < 1e-3 and semicircle["L1_in_time"][0] > 0.4
    assert abs(semicircle["centre"][0] - 0.3) < 1e-3
    # the disk's edge is a jump: its L1 error is first order in the cell size
    l1 = {}
    for cells in (24, 48):
        disk = aggregation.study(tmp_path / str(cells), [f"grid.cells={cells}", "time.end=4", "time.snapshots=3"],
                                 ["aggregation_disk"])
        l1[cells] = disk["aggregation_disk"]["L1"]
    assert l1[48] < 0.03 and l1[24] / l1[48] > 1.6, l1
    draws(aggregation, {**result, **disk}, tmp_path)


@pytest.mark.slow
def test_gallery_size_particle_rates(tmp_path):
    """The particles-to-PDE study at the case's own sizes (one to three minutes)."""
    result = particles_to_pde.study(tmp_path)
    for name, rate in result["slopes"].items():
        assert -0.65 < rate < -0.35, (name, rate)


@pytest.mark.slow
def test_gallery_size_scaling(tmp_path):
    """The scaling study at the case's own sizes (about a minute)."""
    result = scaling.study(tmp_path)
    assert -0.7 < result["slope"] < -0.4
    conventional = result["curves"]["conventional"]
    assert conventional[10].stopped is None and conventional[10000].stopped is not None


# ----------------------------------------------------------------------------- the peers' own code

def test_rbf_gradient_descent_is_the_notebooks_and_birth_death_lowers_the_energy(tmp_path):
    result = rbf_birth_death.study(tmp_path, ["grid.cells=[32,40]", "time.end=1.5", "time.snapshots=4"])
    runs, port = result["runs"], result["port"]
    # gflow's gradient descent is the notebook's run_traj from the same particles, to round-off
    assert result["energy_gap"] < 1e-13 and port["position_gap"] < 1e-12, (result["energy_gap"], port)
    for label in ("GD, fv", "birth-death, fv"):
        assert np.allclose(runs[label].mass, 1.0, rtol=0, atol=1e-12), label
    # birth-death lowers the energy below plain transport's at every t > 0, on the grid and with weights
    for gd, bd in (("GD, fv", "birth-death, fv"), ("GD, particles", "birth-death (weights), particles")):
        assert np.all(runs[bd].energy[1:] < runs[gd].energy[1:]), (gd, runs[gd].energy, runs[bd].energy)
    # and so do the stochastic schemes, gflow's and the notebook's, by the end
    stochastic = runs["birth-death (stochastic), particles"].energy[-1]
    assert stochastic < runs["GD, particles"].energy[-1] and port["bd"][-1] < port["gd"][-1]
    # the grid's a-moment moves towards the exact minimiser's
    assert result["measures"]["birth-death, fv"]["weak"] < 0.7 * result["initial_weak"]
    draws(rbf_birth_death, result, tmp_path)


def test_chizat_relu_particles_are_his_gd_and_fv_lowers_the_objective(tmp_path):
    result = chizat_relu.study(tmp_path, ["time.times=[0, 1, 3, 9, 27, 81, 243]", "grid.cells=[14,14,14]"])
    p, fv, port = result["particles"], result["fv"], result["port"]
    assert len(p.time) == 7 and port["gap"].max() < 1e-12, port["gap"]
    assert np.abs(port["loss"] - p.energy).max() < 1e-14
    assert np.allclose(fv.mass, 1.0, rtol=0, atol=1e-12)
    # a gradient flow: fv's objective falls from snapshot to snapshot, and both risks fall
    assert np.all(np.diff(fv.energy) < 0), fv.energy
    assert fv.risk[-1] < 0.5 * fv.risk[0] and p.risk[-1] < 0.5 * p.risk[0]
    draws(chizat_relu, result, tmp_path)


def test_sparse_deconvolution_particles_are_his_pgd_1d_and_fv_agrees(tmp_path):
    """The first 200 of his 1000 iterations (9 snapshots): gflow's conic particles are his PGD_1D
    from the same start to round-off (positions, masses r^2 / m, his loss), the mass grows from
    0.25, the energy falls, and the fv PDE on 2 x 256 cells agrees with the particles."""
    result = sparse_deconvolution.study(tmp_path, ["time.end=200", "time.snapshots=9"])
    p, fv, port = result["particles"], result["fv"], result["port"]
    assert len(p.time) == 9 and p.time[-1] == 200
    assert port["theta_gap"] < 1e-12 and port["mass_gap"] < 1e-14 and port["loss_gap"] < 1e-13, port
    assert np.abs(port["thetas"][-1] - port["thetas"][0]).max() > 0.05     # the spikes did move
    assert p.mass[0] == pytest.approx(0.25, abs=1e-14) and p.mass[-1] > 0.7
    assert np.all(np.diff(p.energy) < 0) and np.all(np.diff(fv.energy) < 0)
    assert np.abs(fv.mass - p.mass).max() < 0.01 and fv.energy[-1] == pytest.approx(p.energy[-1], rel=0.01)
    draws(sparse_deconvolution, result, tmp_path)


RBF_POINTS_CASE = """
[model]
kind = "two_layer"
unit = "gaussian"
variance = 0.5
[target]
expression = "(exp(-(x + 2)**2)/sqrt(pi) - 2*exp(-x**2/2)/sqrt(2*pi) + exp(-(x - 2)**2)/sqrt(pi))/3"
[data]
distribution = "uniform"
measure = "lebesgue"
low = -12.0
high = 12.0
nodes = 200
[initial]
points = {points}
[grid]
bounds = [[-5.0, 5.0], [-5.0, 5.0]]
cells = [10, 10]
[time]
end = 1.0
snapshots = 3
[solver]
kind = "particle"
integrator = "euler"
lr = 0.01
"""


def test_the_notebooks_run_traj_from_inline_points_is_gflows_to_round_off(tmp_path):
    """The notebook's draw y ~ U[-2, 2], c ~ N(0, 1) from one numpy seed, inline in the case:
    100 steps of the port's closed-form gradient descent against gflow's quadrature."""
    rng = np.random.default_rng(5)
    y, c = 4 * rng.random(30) - 2, rng.standard_normal(30)
    text = RBF_POINTS_CASE.replace("{points}", str(np.column_stack([c, y]).tolist()))
    run, = gflow.run(case_from_text(text), output=tmp_path)
    energies, states = peer_ports.run_traj(y, c, 100, 0.01, every=50)
    assert np.abs(run.energy - energies).max() < 1e-14, (run.energy, energies)
    for i, (yk, ck) in enumerate(states):
        np.testing.assert_allclose(run.positions(i), np.column_stack([ck, yk]), rtol=0, atol=1e-13)
    assert np.abs(states[-1][1] - c).max() > 0.01     # the charges did move


def test_his_gdfor2nn_from_inline_data_and_points_is_gflows_to_round_off(tmp_path):
    """Chizat's setting drawn with one numpy seed: 15 points on the circle with y from a
    three-neuron teacher, inline (no [target]), and 20 neurons on the sphere of radius 2, inline."""
    rng = np.random.default_rng(2)
    w_teacher = rng.standard_normal((3, 2))
    w_teacher /= np.linalg.norm(w_teacher, axis=1, keepdims=True)
    x = rng.standard_normal((15, 2))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.maximum(x @ w_teacher.T, 0) @ np.array([1.0, -1.0, 1.0]) / 3
    W = rng.standard_normal((20, 3))
    W *= 2 / np.linalg.norm(W, axis=1, keepdims=True)     # rows (w1, w2, b), his layout
    text = f"""
[model]
kind = "two_layer"
activation = "relu"
bias = false
input_dim = 2
[data]
x = {x.tolist()}
y = {y.tolist()}
[regularization]
weight_decay = 0.004
[initial]
points = {np.roll(W, 1, axis=1).tolist()}
[grid]
bounds = [[-4.0, 4.0], [-4.0, 4.0], [-4.0, 4.0]]
cells = [8, 8, 8]
[time]
times = [0, 10, 300]
[solver]
kind = "particle"
integrator = "euler"
lr = 1.0
"""
    run, = gflow.run(case_from_text(text), output=tmp_path)
    Ws, loss = peer_ports.gd_for_2nn(x, y, W, 0.002, 1.0, 301)
    for i, k in enumerate((0, 10, 300)):
        np.testing.assert_allclose(run.positions(i), np.roll(Ws[k], 1, axis=1), rtol=0, atol=1e-13)
        assert abs(run.energy[i] - loss[k]) < 1e-15
    assert np.abs(Ws[300] - W).max() > 0.1
