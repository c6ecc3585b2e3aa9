"""What every data bundle shares: named splits and their content fingerprints."""

from __future__ import annotations

from typing import Any

from ..errors import DataError


class SplitBundle:
    """Bundles keep ``self.splits`` (name -> split with ``fingerprint()``) and ``self.name``."""

    name: str
    splits: dict[str, Any]

    def split(self, name: str) -> Any:
        if name not in self.splits:
            raise DataError(f"{self.name}: no split {name!r} (train, val, test).")
        return self.splits[name]

    def fingerprints(self, names: tuple[str, ...] = ("train", "val")) -> dict[str, str]:
        return {n: self.split(n).fingerprint() for n in names}
