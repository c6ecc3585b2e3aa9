"""Energy and CO2e of a run: measured RAPL counters where the machine exposes them, else an estimate.

Method (also printed into every run's ``summary.json`` under ``energy.method``):

- ``rapl``: Linux exposes Intel/AMD RAPL energy counters under ``/sys/class/powercap``. The
  trainer reads the package domains (``intel-rapl:N``, their sub-domains are already included)
  at each tick and adds the difference, handling counter wrap-around. The counters measure the
  whole processor package, so other work on the machine is counted too: measure on a quiet machine.
- ``estimate``: otherwise (no RAPL, or counters not readable without root, as on most machines and
  every VM) energy = (CPU core-seconds x watts per core + GPU wall-seconds x GPU watts) x PUE,
  the method of the Green Algorithms calculator (Lannelongue et al. 2021). CPU core-seconds are
  the process CPU time, which counts every thread.

CO2e = energy (kWh) x grid carbon intensity (g CO2e per kWh). Settings, from the environment:

=====================================  =======  ==================================================
``DEEPATLAS_CPU_WATTS_PER_CORE``       12       processor TDP / cores (a server core: 10-15 W)
``DEEPATLAS_GPU_WATTS``                300      board power of one GPU (an H100 SXM: 700)
``DEEPATLAS_PUE``                      1.0      data-centre power usage effectiveness (1.1-1.6)
``DEEPATLAS_GRID_G_CO2E_PER_KWH``      475      world average (Green Algorithms); France ~60,
                                                Germany ~350, Poland ~650
``DEEPATLAS_ENERGY``                   auto     ``auto`` (RAPL when readable), ``estimate`` or ``rapl``
=====================================  =======  ==================================================
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError

DEFAULTS = {
    "DEEPATLAS_CPU_WATTS_PER_CORE": 12.0,
    "DEEPATLAS_GPU_WATTS": 300.0,
    "DEEPATLAS_PUE": 1.0,
    "DEEPATLAS_GRID_G_CO2E_PER_KWH": 475.0,
}


def _setting(name: str) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return DEFAULTS[name]
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; unset it to use the default {DEFAULTS[name]:g}") from None
    if value < 0 or (name == "DEEPATLAS_PUE" and value < 1.0):
        low = "1.0 (no overhead)" if name == "DEEPATLAS_PUE" else "0"
        raise ConfigError(f"{name}={raw!r} is below {low}")
    return value


def settings() -> dict[str, float]:
    """The power and carbon figures in effect (environment or defaults)."""
    return {
        "cpu_watts_per_core": _setting("DEEPATLAS_CPU_WATTS_PER_CORE"),
        "gpu_watts": _setting("DEEPATLAS_GPU_WATTS"),
        "pue": _setting("DEEPATLAS_PUE"),
        "grid_g_co2e_per_kwh": _setting("DEEPATLAS_GRID_G_CO2E_PER_KWH"),
    }


def estimate_joules(cpu_s: float, gpu_s: float = 0.0, figures: dict[str, float] | None = None) -> float:
    """(CPU core-seconds x W/core + GPU-seconds x GPU W) x PUE."""
    f = figures or settings()
    return (cpu_s * f["cpu_watts_per_core"] + gpu_s * f["gpu_watts"]) * f["pue"]


def energy_report(cpu_s: float, wall_s: float, device_type: str, rapl_j: float | None = None) -> dict[str, Any]:
    """The ``energy`` block of a run summary: joules, kWh, g CO2e and how they were obtained."""
    f = settings()
    gpu_s = wall_s if device_type == "cuda" else 0.0
    if rapl_j is not None:
        # RAPL sees the CPU package; a GPU's board power is still estimated.
        joules = rapl_j * f["pue"] + estimate_joules(0.0, gpu_s, f)
        method = "rapl" + (" + estimated GPU" if gpu_s else "")
    else:
        joules = estimate_joules(cpu_s, gpu_s, f)
        method = "estimate"
    kwh = joules / 3.6e6
    return {
        "method": method,
        "joules": round(joules, 3),
        "kwh": kwh,
        "co2e_g": kwh * f["grid_g_co2e_per_kwh"],
        "cpu_core_s": round(cpu_s, 3),
        "gpu_s": round(gpu_s, 3),
        "assumptions": f,
    }
