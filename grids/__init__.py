"""Cartesian grids in 1 to 3 dimensions and cell-averaged densities on them.

This package imports nothing else of gflow: a grid is plain geometry.
"""
from gflow.grids.cartesian import CartesianGrid
from gflow.grids.initial import (gaussian_cell_average, mixture_cell_average, product_cell_average,
                                 shell_cell_average, uniform_cell_average)
from gflow.grids.layers import LAYER, layer_bounds

__all__ = ["CartesianGrid", "LAYER", "layer_bounds", "gaussian_cell_average", "mixture_cell_average",
           "product_cell_average", "shell_cell_average", "uniform_cell_average"]
