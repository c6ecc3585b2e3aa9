"""Measured energy: the RAPL counters of Linux's powercap interface (see ``tracking/energy.py``
for the method, the estimate used without them, and CO2e)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, one_of

POWERCAP = Path("/sys/class/powercap")
METHODS = ("auto", "estimate", "rapl")


@dataclass
class _Domain:
    path: Path
    max_uj: int


class RAPL:
    """Cumulative package energy (joules) from the powercap RAPL counters, wrap-around handled."""

    def __init__(self, root: Path | None = None) -> None:
        root = POWERCAP if root is None else root
        self.domains: list[_Domain] = []
        for zone in sorted(root.glob("intel-rapl:*")) if root.is_dir() else []:
            if zone.name.count(":") != 1:  # intel-rapl:0:0 (core, dram) is inside intel-rapl:0
                continue
            energy, limit = zone / "energy_uj", zone / "max_energy_range_uj"
            try:
                int(energy.read_text())
                max_uj = int(limit.read_text()) if limit.is_file() else 2**32
            except (OSError, ValueError):
                continue  # not readable (root-only since 2020 on many kernels)
            self.domains.append(_Domain(energy, max_uj))
        self._last = self._read() if self.domains else []
        self.joules = 0.0

    @property
    def available(self) -> bool:
        return bool(self.domains)

    def _read(self) -> list[int]:
        return [int(d.path.read_text()) for d in self.domains]

    def update(self) -> float:
        """Add the energy since the last call; returns the total."""
        if not self.domains:
            return self.joules
        try:
            now = self._read()
        except (OSError, ValueError):
            return self.joules
        for d, before, after in zip(self.domains, self._last, now, strict=True):
            delta = after - before if after >= before else after + d.max_uj - before
            self.joules += delta / 1e6
        self._last = now
        return self.joules


def open_meter(method: str | None = None) -> RAPL | None:
    """The RAPL meter when the method allows and the counters are readable; None means estimate."""
    method = (method or os.environ.get("DEEPATLAS_ENERGY") or "auto").strip().lower()
    if method not in METHODS:
        raise ConfigError(f"DEEPATLAS_ENERGY={method!r} is not one of {one_of(METHODS)}")
    if method == "estimate":
        return None
    meter = RAPL()
    if method == "rapl" and not meter.available:
        raise ConfigError(
            f"DEEPATLAS_ENERGY=rapl but no readable RAPL counter under {POWERCAP} "
            "(absent in VMs; root-only on many kernels). Use DEEPATLAS_ENERGY=estimate or auto."
        )
    return meter if meter.available else None
