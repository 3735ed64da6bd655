"""Dataset catalog: resolves a job's `data.dataset_name` to a file on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from flows.errors import ConfigError, NotFoundError


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    description: str = ""


def load_catalog(catalog_file: Path) -> dict[str, Dataset]:
    if not catalog_file.is_file():
        raise NotFoundError(f"dataset catalog {catalog_file} does not exist")
    raw = yaml.safe_load(catalog_file.read_text()) or {}
    entries = raw.get("datasets") or {}
    if not isinstance(entries, dict):
        raise ConfigError(f"{catalog_file}: 'datasets' must be a mapping of name -> entry")
    out: dict[str, Dataset] = {}
    for name, entry in entries.items():
        path = Path(entry["path"])
        if not path.is_absolute():
            path = (catalog_file.parent / path).resolve()
        out[name] = Dataset(name=name, path=path, description=entry.get("description", ""))
    return out


def resolve_dataset(name: str, catalog_file: Path) -> Dataset:
    catalog = load_catalog(catalog_file)
    if name not in catalog:
        known = ", ".join(sorted(catalog)) or "(none)"
        raise NotFoundError(f"unknown dataset '{name}'; known datasets: {known}")
    return catalog[name]
