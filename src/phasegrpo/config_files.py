"""Config files: a Python file that builds a Config, or a run's saved config.json.

    phasegrpo train --config examples/seed_1gpu.py          # defines `config = preset("seed", ...)`
    phasegrpo train --config runs/x/config.json             # run a saved run's settings again

From Python: `load_config_file("examples/seed_1gpu.py")` returns the Config.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

from phasegrpo.config import Config, from_dict


def load_config_file(path: str | Path) -> Config:
    """The Config a `.py` file defines as `config`, or the one a `.json` file holds."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Config file {path} does not exist.")
    if path.suffix == ".py":
        return _from_python(path)
    if path.suffix == ".json":
        return _from_json(path)
    raise ValueError(
        f"Config file {path}: expected a .py file that defines `config` (see examples/) or a run's "
        "config.json written by `phasegrpo train`."
    )


def _from_python(path: Path) -> Config:
    # A module name of its own per file: the file's functions (custom rewards) can be found by name.
    module_name = "phasegrpo_config_" + re.sub(r"\W", "_", path.resolve().with_suffix("").as_posix())
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # As `python file.py` would: the file may import modules that sit beside it.
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        sys.path.remove(str(path.resolve().parent))
    if not hasattr(module, "config"):
        defined = sorted(name for name in vars(module) if not name.startswith("_"))
        raise ValueError(
            f"Config file {path} defines no `config`; it defines: {', '.join(defined) or 'nothing'}. "
            'End it with e.g. `config = preset("seed", max_steps=600)` (from phasegrpo import preset).'
        )
    config = module.config
    if not isinstance(config, Config):
        raise ValueError(
            f"Config file {path}: `config` is a {type(config).__name__} ({config!r:.80}), not a phasegrpo Config. "
            'Build it with phasegrpo.preset("seed", ...) or phasegrpo.Config(...).'
        )
    return config


def _from_json(path: Path) -> Config:
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"Config file {path} is not valid JSON: {error}.") from error
    if not isinstance(values, dict):
        raise ValueError(f"Config file {path} holds a {type(values).__name__}; expected an object of config fields, as a run's config.json.")
    return from_dict(values)
