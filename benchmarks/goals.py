"""The goals the benchmarks are held to, and how a result is shown against them."""
from __future__ import annotations

#: key -> (goal, "<=" or ">=") as the issue fixes them
GOALS = {
    "fv_step_over_floor_512": (3, "<="),
    "fv_step_over_floor_128cubed": (4, "<="),
    "fv_speedup_vs_fipy": (30, ">="),
    "particle_ns_per_particle_datum": (1, "<="),
    "particle_ns_per_particle_datum_f32": (0.5, "<="),
    "particle_speedup_vs_torch": (1, ">="),
    "fv_cost_advantage_vs_particles": (30, ">="),
    "fv_cost_advantage_vs_particles_1e4": (100, ">="),
    "spectral_cost_advantage_vs_fv_1e6": (10, ">="),
    "resnet_fv_step_over_two_layer": (1.5, "<="),
    "symmetry_fv_step_over_input_dim_2": (2, "<="),
}


def verdict(key: str, value) -> str:
    if key not in GOALS or not isinstance(value, (int, float, list)):
        return ""
    goal, sense = GOALS[key]
    values = value if isinstance(value, list) else [value]
    if any(v is None for v in values):
        return "skipped"
    ok = all((v <= goal) if sense == "<=" else (v >= goal) for v in values)
    return f"{'meets' if ok else 'MISSES'} {sense} {goal}"


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and all(isinstance(v, (int, float, list)) for v in value):
        # a list of ranges (one [min, max] per entry) nests
        return "[" + ", ".join(format_value(v) if isinstance(v, list) else f"{v:.3g}" for v in value) + "]"
    return str(value)
