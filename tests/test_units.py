"""The unit registry: every unit has a fused kernel or a documented numpy fallback, and exact sigma'."""
import numpy as np
import pytest

from gflow.models.units import UNITS
from gflow.models import two_layer_kernels


def test_every_unit_has_a_kernel_or_a_documented_fallback():
    for name, unit in UNITS.items():
        assert unit.name == name
        if unit.kernel_code is None:
            assert unit.fallback.strip(), f"unit {name!r} has neither a kernel code nor a documented fallback"
        else:
            assert two_layer_kernels.ACTIVATION_CODES[name] == unit.kernel_code
    codes = [u.kernel_code for u in UNITS.values() if u.kernel_code is not None]
    assert len(codes) == len(set(codes)), "two units share one kernel branch"


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_derivative_is_exact(name):
    unit = UNITS[name]
    z = np.linspace(-3, 3, 61) + 0.013   # away from relu's kink
    h = 1e-6
    np.testing.assert_allclose(unit.dsigma(z), (unit.sigma(z + h) - unit.sigma(z - h)) / (2 * h),
                               rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_second_derivative_is_exact(name):
    """sigma'' (the resnet's extended MSA needs it) is the derivative of sigma'."""
    unit = UNITS[name]
    assert unit.d2sigma is not None
    z = np.linspace(-3, 3, 61) + 0.013
    h = 1e-6
    np.testing.assert_allclose(unit.d2sigma(z), (unit.dsigma(z + h) - unit.dsigma(z - h)) / (2 * h),
                               rtol=1e-6, atol=1e-8)


def test_case_parser_accepts_exactly_the_registered_units():
    from gflow.case import case_from_text
    from gflow.errors import InputError

    text = """
[model]
kind = "two_layer"
activation = "{}"
[target]
expression = "x"
[initial]
mean = [0.0, 0.0]
std = [1.0, 1.0]
[grid]
bounds = [[-1.0, 1.0], [-1.0, 1.0]]
cells = [4, 4]
[time]
end = 1.0
"""
    for name in UNITS:
        assert case_from_text(text.format(name)).model.activation == name
    with pytest.raises(InputError, match="model.activation: unknown value 'swish'"):
        case_from_text(text.format("swish"))
