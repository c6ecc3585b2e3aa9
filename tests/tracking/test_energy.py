"""Energy accounting: RAPL counters (a fake powercap tree, with wrap-around) and the estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepatlas.engine.energy import RAPL, open_meter
from deepatlas.errors import ConfigError
from deepatlas.tracking.energy import energy_report, estimate_joules, settings


def _zone(root: Path, name: str, uj: int, max_uj: int = 1_000_000_000) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(f"{uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


def test_rapl_sums_packages_skips_subdomains_and_handles_wraparound(tmp_path: Path) -> None:
    pkg0 = _zone(tmp_path, "intel-rapl:0", 999_000_000)
    pkg1 = _zone(tmp_path, "intel-rapl:1", 5_000_000)
    core = _zone(tmp_path, "intel-rapl:0:0", 0)  # inside package 0: must not be counted twice
    meter = RAPL(tmp_path)
    assert meter.available and len(meter.domains) == 2
    (pkg0 / "energy_uj").write_text("2000000\n")  # wrapped: 1,000 J range, 999 J -> 2 J is +3 J
    (pkg1 / "energy_uj").write_text("7500000\n")  # +2.5 J
    (core / "energy_uj").write_text("900000000\n")
    assert meter.update() == pytest.approx(5.5)
    (pkg1 / "energy_uj").write_text("8500000\n")
    assert meter.update() == pytest.approx(6.5)


def test_unreadable_or_missing_counters_fall_back_to_the_estimate(tmp_path: Path, monkeypatch) -> None:
    assert not RAPL(tmp_path / "absent").available
    monkeypatch.setattr("deepatlas.engine.energy.POWERCAP", tmp_path / "absent")
    assert open_meter("auto") is None and open_meter("estimate") is None
    with pytest.raises(ConfigError, match="no readable RAPL counter"):
        open_meter("rapl")
    with pytest.raises(ConfigError, match="auto, estimate, rapl"):
        open_meter("watts")


def test_estimate_follows_the_documented_formula(monkeypatch) -> None:
    monkeypatch.setenv("DEEPATLAS_CPU_WATTS_PER_CORE", "10")
    monkeypatch.setenv("DEEPATLAS_GPU_WATTS", "400")
    monkeypatch.setenv("DEEPATLAS_PUE", "1.5")
    monkeypatch.setenv("DEEPATLAS_GRID_G_CO2E_PER_KWH", "360")
    assert estimate_joules(cpu_s=100.0, gpu_s=10.0) == pytest.approx((100 * 10 + 10 * 400) * 1.5)
    cpu = energy_report(cpu_s=7200.0, wall_s=3600.0, device_type="cpu")
    assert cpu["method"] == "estimate" and cpu["gpu_s"] == 0
    assert cpu["kwh"] == pytest.approx(7200 * 10 * 1.5 / 3.6e6)  # 2 cores for an hour at 10 W: 0.03 kWh
    assert cpu["co2e_g"] == pytest.approx(cpu["kwh"] * 360)
    gpu = energy_report(cpu_s=3600.0, wall_s=3600.0, device_type="cuda", rapl_j=36_000.0)
    assert gpu["method"] == "rapl + estimated GPU"
    assert gpu["joules"] == pytest.approx((36_000 + 3600 * 400) * 1.5)


def test_bad_settings_are_named(monkeypatch) -> None:
    monkeypatch.setenv("DEEPATLAS_GRID_G_CO2E_PER_KWH", "lots")
    with pytest.raises(ConfigError, match="DEEPATLAS_GRID_G_CO2E_PER_KWH='lots' is not a number"):
        settings()
    monkeypatch.setenv("DEEPATLAS_GRID_G_CO2E_PER_KWH", "")
    monkeypatch.setenv("DEEPATLAS_PUE", "0.9")
    with pytest.raises(ConfigError, match="below 1.0"):
        settings()
