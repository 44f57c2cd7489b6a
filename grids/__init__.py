"""Cartesian grids in 1 to 3 dimensions and cell-averaged densities on them.

This package imports nothing else of gflow: a grid is plain geometry.
"""
from gflow.grids.cartesian import CartesianGrid
from gflow.grids.initial import gaussian_cell_average, mixture_cell_average, uniform_cell_average

__all__ = ["CartesianGrid", "gaussian_cell_average", "mixture_cell_average", "uniform_cell_average"]
