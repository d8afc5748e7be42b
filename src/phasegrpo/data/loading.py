"""`load_domain` and `load_mixture`: normalized rows of one domain, or of several, from the Hub,
from local files in the Hub schema, or from the offline generators."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets

from phasegrpo.data import synthetic
from phasegrpo.data._rows import FEATURES, check_domain
from phasegrpo.data.hub import HubDataset, UnusableRow
from phasegrpo.domains import domain_names, get_domain

SYNTHETIC = "synthetic"
_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def sources_for(domain: str) -> list[str]:
    """The `source` values `load_domain` accepts for a domain (None means the first)."""
    spec = get_domain(domain)
    hub = ["hub", *(dataset.name for dataset in spec.hub_datasets)] if spec.hub_datasets else []
    return [*hub, *([SYNTHETIC] if spec.generate is not None else [])]


def load_domain(
    domain: str,
    source: str | None = None,
    split: str = "train",
    data_files=None,
    limit: int | None = None,
    *,
    seed: int = 0,
) -> datasets.Dataset:
    """Normalized rows of one domain (columns prompt, domain, answer, tests, setup_code, source, id).

    source: None or "hub" for the domain's reference dataset on the Hub (gsm8k, mbpp,
        arc_easy, strategyqa), another Hub dataset of the domain by name (mbpp_sanitized,
        strategyqa_full), or "synthetic" for generated data (`seed` picks the stream);
        `sources_for(domain)` lists them.
    data_files: local JSON/JSONL/Parquet file(s) in the Hub schema of the source, read instead
        of the Hub (a dict maps split names to files, as in `datasets.load_dataset`).
    limit: keep at most this many rows (the first ones, in source order); for synthetic data,
        how many to generate (default 5,000 train / 500 test).
    """
    check_domain(domain)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}.")
    if source == SYNTHETIC:
        if get_domain(domain).generate is None:
            raise ValueError(f"Unknown source {source!r} for domain {domain!r}. Available: {', '.join(sources_for(domain))}.")
        if data_files is not None:
            raise ValueError("data_files cannot be used with source='synthetic' (generated data has no files).")
        return datasets.Dataset.from_list(synthetic.generate(domain, split, limit, seed), features=FEATURES)
    spec = _hub_dataset(domain, source)
    if data_files is not None:
        raw, origin = _read_files(data_files, split), f"{spec.path} (local files {_describe(data_files)})"
        hub_split = split
    else:
        if split not in spec.splits:
            raise ValueError(f"{spec.path} has no split {split!r}. Available: {', '.join(spec.splits)}.")
        hub_split = spec.splits[split]
        try:
            raw = [datasets.load_dataset(spec.path, spec.config, split=hub_split)]
        except ConnectionError as error:  # offline, or no network, and not in the cache
            raise RuntimeError(
                f"{error}. The {domain} rows come from {spec.path} on the Hugging Face Hub: connect once to cache it, "
                f"or read local files in its schema (--data-dir DIR with DIR/{spec.name}/*.jsonl), or use generated "
                "data (--data-source synthetic)."
            ) from error
        origin = f"{spec.path}" + (f" ({spec.config}, {spec.splits[split]})" if spec.config else f" ({spec.splits[split]})")
    return _normalize(raw, spec, origin, hub_split, limit)


def _hub_dataset(domain: str, source: str | None) -> HubDataset:
    datasets_of_domain = get_domain(domain).hub_datasets
    by_name = {spec.name: spec for spec in datasets_of_domain}
    spec = (datasets_of_domain[0] if datasets_of_domain else None) if source in (None, "hub") else by_name.get(source)
    if spec is None:
        raise ValueError(f"Unknown source {source!r} for domain {domain!r}. Available: {', '.join(sources_for(domain))}.")
    return spec


def _describe(data_files) -> str:
    if isinstance(data_files, Mapping):
        return ", ".join(f"{key}: {_describe(value)}" for key, value in data_files.items())
    if isinstance(data_files, (str, Path)):
        return Path(data_files).name
    return ", ".join(Path(path).name for path in data_files)


def _read_files(data_files, split: str) -> list[datasets.Dataset]:
    """One dataset per file, so files of different layouts (MBPP full and sanitized) mix."""
    if isinstance(data_files, Mapping):
        if split not in data_files:
            raise ValueError(f"data_files has no split {split!r}. Available: {', '.join(data_files)}.")
        data_files = data_files[split]
    paths = [Path(data_files)] if isinstance(data_files, (str, Path)) else [Path(path) for path in data_files]
    if not paths:
        raise ValueError("data_files is empty.")
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"Data file(s) not found: {', '.join(missing)}.")
    unknown = [path.name for path in paths if path.suffix.lower() not in _FILE_BUILDERS]
    if unknown:
        raise ValueError(f"data_files must be {', '.join(_FILE_BUILDERS)} files, got {', '.join(unknown)}.")
    return [
        datasets.load_dataset(_FILE_BUILDERS[path.suffix.lower()], data_files=str(path), split="train") for path in paths
    ]


def _normalize(
    parts: list[datasets.Dataset], spec: HubDataset, origin: str, split: str, limit: int | None
) -> datasets.Dataset:
    rows, dropped, read = [], {}, 0
    for part_number, part in enumerate(parts):
        for position, row in enumerate(part):
            if limit is not None and len(rows) >= limit:
                break
            read += 1
            # Rows without an id of their own (GSM8K) are named by split and position.
            fallback_id = f"{split}-{position}" if len(parts) == 1 else f"{split}-{part_number}-{position}"
            try:
                normalized = spec.normalize(row, fallback_id)
            except UnusableRow as error:
                dropped[str(error)] = dropped.get(str(error), 0) + 1
                continue
            normalized["source"] = spec.path
            rows.append(normalized)
    if dropped:
        reasons = "; ".join(f"{count} {reason}" for reason, count in dropped.items())
        message = f"{origin}: dropped {sum(dropped.values())} unusable row(s) of {read} ({reasons})."
        warnings.warn(message, stacklevel=3)
    if not rows:
        raise ValueError(
            f"{origin}: no usable {spec.domain} rows (read {read}). Check that the files follow {spec.path}'s schema."
        )
    return datasets.Dataset.from_list(rows, features=FEATURES)


# --- several domains ----------------------------------------------------------------------

_SPLIT_NAMES = ("train", "validation", "test")


def files_for_split(folder: Path, split: str) -> tuple[list[Path], bool]:
    """The data files of `split` in one domain folder, and whether they really are that split.

    1. Files named exactly after the split (`train.jsonl`, `train.parquet`).
    2. Else files whose name ends in `_<split>` or `-<split>` (`sanitized_test.jsonl`).
    3. Else (the folder lacks that split, as ARC-Easy in ../shared/data has only
       `test.jsonl`) the files named exactly after the first other split found in the order
       train, validation, test, and the second value is False so the caller can warn.
    """
    files = sorted(path for path in folder.iterdir() if path.suffix.lower() in _FILE_BUILDERS and path.is_file())
    if not files:
        raise FileNotFoundError(f"No .json/.jsonl/.parquet files in {folder}.")

    def stem(path: Path) -> str:
        return path.name.split(".")[0]

    exact = [path for path in files if stem(path) == split]
    if exact:
        return exact, True
    suffixed = [path for path in files if stem(path).endswith((f"_{split}", f"-{split}"))]
    if suffixed:
        return suffixed, True
    for other in _SPLIT_NAMES:
        named = [path for path in files if stem(path) == other]
        if named:
            return named, False
    return files[:1], False


def load_mixture(
    domains_or_weights: Sequence[str] | Mapping[str, float],
    source: str | None = None,
    split: str = "train",
    data_dir: str | Path | None = None,
    limit: int | None = None,
    *,
    seed: int = 0,
) -> dict[str, datasets.Dataset]:
    """`load_domain` for several domains: `{domain: Dataset}` in the order given.

    With a weights mapping, domains of weight 0 are not loaded. `data_dir` (a folder shaped like
    ../shared/data: `<dir>/gsm8k`, `mbpp`, `arc_easy`, `strategyqa`, or named by domain) reads
    local files instead of `source`; see `files_for_split` for which file each split reads.
    """
    if isinstance(domains_or_weights, Mapping):
        from phasegrpo.data.mixing import normalize_weights

        domains = [domain for domain, weight in normalize_weights(domains_or_weights).items() if weight > 0]
    else:
        domains = list(domains_or_weights)
        if not domains:
            raise ValueError(f"No domains to load. Available: {', '.join(domain_names())}.")
        for domain in domains:
            check_domain(domain)
    loaded = {}
    for domain in domains:
        if data_dir is None:
            loaded[domain] = load_domain(domain, source, split, limit=limit, seed=seed)
            continue
        folder = _domain_folder(Path(data_dir), domain)
        files, is_split = files_for_split(folder, split)
        if not is_split:
            message = (
                f"{folder} has no {split!r} file; using {', '.join(path.name for path in files)} for the {split} split "
                "of this domain (it may overlap other splits)."
            )
            warnings.warn(message, stacklevel=2)
        loaded[domain] = load_domain(domain, None if source == SYNTHETIC else source, split, data_files=files, limit=limit)
    return loaded


def _domain_folder(data_dir: Path, domain: str) -> Path:
    # Each domain names its folders (`Domain.data_dir_folders`: gsm8k/ or math/, ...).
    folders = get_domain(domain).data_dir_folders
    for name in folders:
        if (data_dir / name).is_dir():
            return data_dir / name
    raise FileNotFoundError(f"No folder for {domain} in {data_dir}: expected one of {', '.join(folders)}.")
