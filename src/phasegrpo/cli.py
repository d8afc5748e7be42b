"""The `phasegrpo` command: train, eval, report, study. Every Config field is a `train` (and `study`) flag."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import sys
import typing

from phasegrpo.config import PRESETS, Config, preset_field_values
from phasegrpo.trackers import MissingTrackerError, parse_report_to

DEFAULT_PRESET = "demo"


def _parse_mapping(text: str) -> dict:
    """`math=0.5,code=0.5` or JSON → dict (numbers parsed where they look like numbers)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(f"expected key=value pairs (math=0.5,code=0.5) or a JSON object, got {text!r} ({error})") from None
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise argparse.ArgumentTypeError(f"expected key=value pairs separated by commas (math=0.5,code=0.5), got {item!r}")
        key, value = item.split("=", 1)
        try:
            result[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            result[key.strip()] = value.strip()
    return result


def _parse_list(text: str) -> list:
    text = text.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(f"expected a JSON list or comma-separated values, got {text!r} ({error})") from None
    return [json.loads(part) if part.strip()[:1].isdigit() else part.strip() for part in text.split(",")]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the None that marks a config flag as "not given" (the config
    flags carry the presets' values in their help instead)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None:
            return action.help or ""
        return super()._get_help_string(action)


def _show(value) -> str:
    if isinstance(value, str):
        return value or "''"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _preset_values_help(field_name: str) -> str:
    """`(demo preset: 4; seed preset: 300)`, or `(default: 0.08)` where every preset agrees."""
    values = preset_field_values(field_name)
    shown = {name: _show(value) for name, value in values.items()}
    if len(set(shown.values())) == 1:
        text = f"(default: {next(iter(shown.values()))})"
    else:
        text = "(" + "; ".join(f"{name} preset: {value}" for name, value in shown.items()) + ")"
    return text.replace("%", "%%")  # argparse %-formats help strings


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(Config)
    group = parser.add_argument_group("config fields (override the preset or the --config file)")
    for field in dataclasses.fields(Config):
        flags = ["--" + field.name.replace("_", "-")]
        if "flag" in field.metadata:  # a short name first, e.g. --trl for --trl-args
            flags.insert(0, field.metadata["flag"])
        help_text = f"{field.metadata.get('help', '').replace('%', '%%')} {_preset_values_help(field.name)}"  # argparse %-formats help
        kind = hints[field.name]
        # default=None for every flag: only flags actually given override the preset or the file.
        if kind is bool:
            group.add_argument(*flags, dest=field.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif kind is dict:
            group.add_argument(*flags, dest=field.name, type=_parse_mapping, default=None, metavar="K=V,...", help=help_text)
        elif kind is list:
            group.add_argument(*flags, dest=field.name, type=_parse_list, default=None, metavar="JSON", help=help_text)
        else:
            group.add_argument(*flags, dest=field.name, type=kind, default=None, help=help_text)


def _config_overrides(args: argparse.Namespace) -> dict:
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(Config) if getattr(args, field.name, None) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phasegrpo",
        description="Multi-domain GRPO with a phase reward curriculum, on TRL's GRPOTrainer with a LoRA policy.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    # A short usage line: listing every config flag would bury a flag's error message under 40 lines.
    train = commands.add_parser("train", help="Train a LoRA policy with GRPO and the phase curriculum.",
                                formatter_class=_HelpFormatter,
                                usage="phasegrpo train [--preset NAME | --config FILE] [--resume | --overwrite] [CONFIG FLAGS ...]"
                                      "  (phasegrpo train --help lists them)")
    train.add_argument("--preset", default=None, choices=sorted(PRESETS), help=f"Starting configuration (default: {DEFAULT_PRESET}).")
    train.add_argument("--config", default=None, metavar="FILE",
                       help="Start from a config file instead of a preset: a .py file that defines `config` "
                            "(see examples/), or a run's config.json to run it again.")
    train.add_argument("--resume", action="store_true", help="Continue the run in --output-dir from its last complete checkpoint.")
    train.add_argument("--overwrite", action="store_true", help="Delete an existing run folder and start over.")
    train.add_argument("--allow-max-steps-change", action="store_true", help="On --resume, accept a new --max-steps and re-time the phases.")
    train.add_argument("--print-config", action="store_true", help="Print the resolved config and exit.")
    _add_config_flags(train)

    evaluate = commands.add_parser("eval", help="Evaluate a model (optionally with a run's adapter) on held-out rows.",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    evaluate.add_argument("--model", default=None, help="Hub id, local folder, or 'embedded' (default: --run-dir's model, else embedded).")
    evaluate.add_argument("--adapter", default=None, help="A LoRA adapter folder (default: --run-dir's adapter, if any).")
    evaluate.add_argument("--run-dir", default=None, help="A run folder: its model and adapter are evaluated, results go to RUN_DIR/eval.json.")
    evaluate.add_argument("--data-source", default="synthetic", choices=["synthetic", "hub"], help="Held-out rows: generated test split or the Hub test splits.")
    evaluate.add_argument("--data-dir", default=None, help="Local files in the Hub schema instead of the Hub.")
    evaluate.add_argument("--rows-per-domain", type=int, default=8, help="Held-out rows per domain.")
    evaluate.add_argument("--max-new-tokens", type=int, default=256, help="Tokens per completion.")
    evaluate.add_argument("--batch-size", type=int, default=None, help="Completions generated together (default: 16 on a CPU, 64 on a GPU).")
    evaluate.add_argument("--device", default="auto", help="Where the model runs: auto (the GPU when there is one, else the CPU), cpu, cuda, cuda:1, ...")
    evaluate.add_argument("--use-vllm", action="store_true", help="Generate with vLLM (a CUDA machine with `pip install vllm`).")
    evaluate.add_argument("--dtype", default="auto", help="auto, bfloat16, float16, float32.")
    evaluate.add_argument("--samples-per-row", type=int, default=1, help="Completions per row; > 1 reports pass@k (needs --temperature > 0).")
    evaluate.add_argument("--temperature", type=float, default=0.0, help="0 = greedy; > 0 samples (for pass@k).")
    evaluate.add_argument("--top-p", type=float, default=1.0, help="Nucleus sampling when --temperature > 0.")
    evaluate.add_argument("--seed", type=int, default=0, help="Seed of the held-out rows and of sampling.")
    evaluate.add_argument("--no-progress", action="store_true", help="No progress bar.")
    evaluate.add_argument("--worked-example", action=argparse.BooleanOptionalAction, default=None,
                          help="Show one solved item per domain before each question, as the demo trains with (default: the run's setting with --run-dir, else off).")
    evaluate.add_argument("--output", default=None, help="Write the results as JSON here (default with --run-dir: RUN_DIR/eval.json).")

    rewards = commands.add_parser("rewards", help="Inspect the rewards and the router.")
    rewards_commands = rewards.add_subparsers(dest="rewards_command", required=True)
    explain = rewards_commands.add_parser(
        "explain", help="Show why one completion gets its score: every reward, enabled?, raw, weight, scale, contribution.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    explain.add_argument("--completion", required=True, help="The completion text, or @FILE to read it from a file ('@-': stdin).")
    explain.add_argument("--domain", required=True, help="The row's domain: math, code, science, logic, or a registered one.")
    explain.add_argument("--answer", default="", help="The row's reference answer.")
    explain.add_argument("--tests", action="append", default=[], help="Code only: an assert statement (repeat the flag).")
    explain.add_argument("--setup-code", default="", help="Code only: run before the tests.")
    explain.add_argument("--step", type=int, default=0, help="Training step (picks the phase).")
    explain.add_argument("--max-steps", type=int, default=None, help="Training length (default: the config's max_steps).")
    explain.add_argument("--preset", default="seed", choices=sorted(PRESETS), help="Config whose router to use.")
    explain.add_argument("--run-dir", default=None, help="Use this run's config.json (and, with a metric schedule, its latest checkpoint's phases).")

    report = commands.add_parser("report", help="Write a run folder's plots, report.html (self-contained) and report.md.")
    report.add_argument("run_dir", help="A run folder (with metrics.jsonl).")
    _add_export_command(commands)
    _add_generate_command(commands)
    _add_study_command(commands)
    return parser


def _add_study_command(commands) -> None:
    from phasegrpo.studies import DEFAULT_EVAL_ROWS_PER_DOMAIN, DEFAULT_OUTPUT_DIR, DEFAULT_SEEDS, STUDY_OVERRIDES
    from phasegrpo.studies.arms import ARMS, DEFAULT_ARMS

    study = commands.add_parser(
        "study", formatter_class=_HelpFormatter,
        help="Compare the curriculum with static rewards, no domain scales (and the metric schedule) over seeds, "
             "each run evaluated before and after on the same held-out rows; writes study.json, plots and study.html.",
        description=f"Every arm x seed is a training run from one base config (the preset, then the study's defaults "
                    f"{STUDY_OVERRIDES}, then your flags); --output-dir is the study folder. Run the same command "
                    f"again after a kill: finished runs are kept, a half-trained run resumes.")
    study.add_argument("--preset", default=None, choices=sorted(PRESETS), help=f"Base configuration (default: {DEFAULT_PRESET}).")
    study.add_argument("--config", default=None, metavar="FILE", help="Base configuration from a config file instead of a preset.")
    study.add_argument("--arms", default=",".join(DEFAULT_ARMS), help=f"Comma list of arms, from: {', '.join(ARMS)}.")
    study.add_argument("--seeds", default=str(DEFAULT_SEEDS),
                       help="Runs per arm: a count (seeds from --seed on) or a comma list of seeds.")
    study.add_argument("--eval-seed", type=int, default=0, help="Seed that draws the held-out rows (the same for every run).")
    study.add_argument("--eval-batch-size", type=int, default=8, help="Held-out completions generated together.")
    study.add_argument("--overwrite", action="store_true", help="Delete the study folder and start over.")
    study.add_argument("--print-plan", action="store_true", help="Print the arms' differences, the runs and the time estimate, and exit.")
    study.add_argument("--no-progress", action="store_true", help="No progress bars.")
    _add_config_flags(study)
    study.set_defaults(study_eval_rows_default=DEFAULT_EVAL_ROWS_PER_DOMAIN, study_output_default=DEFAULT_OUTPUT_DIR)


def _add_export_command(commands) -> None:
    export = commands.add_parser(
        "export", help="Share a trained run: a merged transformers folder, a GGUF file, an upload to the Hub.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    export.add_argument("run_dir", help="A finished run folder (with adapter/).")
    export.add_argument("--merged", default=None, metavar="OUT", help="Write the base model with the adapter merged in (plain transformers) here.")
    export.add_argument("--gguf", default=None, metavar="OUT.gguf", help="Write the merged model as a GGUF file (gemma3, for llama.cpp) here.")
    export.add_argument("--gguf-type", default="f16", choices=["f16", "f32"], help="Type of the GGUF's matrices (norms stay f32).")
    export.add_argument("--push-to-hub", default=None, metavar="REPO", help="Upload to this Hub repo (NAMESPACE/NAME): the merged folder with --merged, else the adapter.")
    export.add_argument("--private", action="store_true", help="Create the Hub repo as private.")


def _add_generate_command(commands) -> None:
    generate = commands.add_parser(
        "generate", help="Print a trained run's completion for a prompt.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    generate.add_argument("run_dir", help="A finished run folder (with adapter/).")
    generate.add_argument("--prompt", required=True, help="The question, or @FILE to read it from a file ('@-': stdin).")
    generate.add_argument("--domain", default=None, help="With a run that trained with worked examples (the demo): show one solved item of this domain first.")
    generate.add_argument("--max-new-tokens", type=int, default=256, help="Tokens to generate at most.")
    generate.add_argument("--temperature", type=float, default=0.0, help="0 = greedy; > 0 samples.")
    generate.add_argument("--dtype", default="auto", help="auto, bfloat16, float16, float32.")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "report":
            return _report(args)
        if args.command == "rewards":
            return _rewards_explain(args)
        if args.command == "export":
            return _export(args)
        if args.command == "generate":
            return _generate(args)
        if args.command == "study":
            return _study(args)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError, PermissionError, MissingTrackerError) as error:
        print(f"phasegrpo {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        print(f"phasegrpo {args.command}: error: {error}", file=sys.stderr)  # a full disk: the message says what to do
        return 1
    return 1


def _train(args) -> int:
    from phasegrpo.config import override, preset

    overrides = _config_overrides(args)
    if args.config:
        if args.preset:
            raise ValueError(f"--preset {args.preset} and --config {args.config} both given: a config file chooses its own "
                             "starting point (e.g. `config = preset(\"seed\", ...)`). Pass one of them.")
        from phasegrpo.config_files import load_config_file

        config = override(load_config_file(args.config), **overrides)  # flags given on the command line win
    else:
        config = preset(args.preset or DEFAULT_PRESET, **overrides)
        if args.resume:
            saved = _saved_config(config.output_dir)
            if saved is not None:  # the run's own settings, with only what was given on this command line changed
                config = override(saved, **overrides)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    from phasegrpo import run_folder
    from phasegrpo.training import distributed, train

    result = train(config, resume=args.resume, overwrite=args.overwrite, allow_max_steps_change=args.allow_max_steps_change)
    if not distributed.is_main_process():  # under a launcher the main process lists the run folder
        return 130 if result.was_interrupted else 0
    print(f"\nRun folder: {result.run_dir}  (step {result.global_step})")
    for name in (run_folder.CONFIG_FILE, run_folder.METRICS_FILE, run_folder.SAMPLES_FILE, run_folder.ADAPTER_DIR,
                 run_folder.PLOTS_DIR, run_folder.EVAL_BEFORE_FILE, run_folder.EVAL_AFTER_FILE, run_folder.REPORT_HTML,
                 run_folder.REPORT_MARKDOWN):
        path = result.run_dir / name
        if path.exists():
            print(f"  {path}")
    if "tensorboard" in parse_report_to(config.report_to):
        print(f"TensorBoard: tensorboard --logdir {result.run_dir / run_folder.CHECKPOINTS_DIR / 'runs'}")
    return 130 if result.was_interrupted else 0


def _eval(args) -> int:
    from pathlib import Path

    from phasegrpo import run_folder
    from phasegrpo.evaluation import evaluate_rows, format_table, load_eval_rows, load_for_eval, write_result
    from phasegrpo.router import RewardRouter

    model_name, adapter, output = args.model, args.adapter, args.output
    worked_example = args.worked_example
    router = None  # the reference router, unless the run has its own
    if args.run_dir:
        run_dir = Path(args.run_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"Run folder {run_dir} does not exist. Pass the --output-dir of a training run.")
        saved = _saved_config(run_dir)
        adapter_dir = run_dir / run_folder.ADAPTER_DIR
        adapter = adapter or (str(adapter_dir) if (adapter_dir / "adapter_config.json").exists() else None)
        output = output or str(run_dir / run_folder.EVAL_FILE)
        if saved is not None:
            model_name = model_name or saved.model
            worked_example = saved.worked_example if worked_example is None else worked_example
            router = RewardRouter.from_config(saved)  # score as the run was trained: its phases, weights, scales, values
    if args.use_vllm:
        from phasegrpo.models import load_tokenizer
        from phasegrpo.vllm_eval import VLLMEngine

        model, tokenizer = VLLMEngine(model_name or "embedded", adapter, dtype=args.dtype), load_tokenizer(model_name or "embedded")
    else:
        model, tokenizer = load_for_eval(model_name or "embedded", adapter, args.dtype, device=args.device)
    rows = load_eval_rows(source=args.data_source, rows_per_domain=args.rows_per_domain, data_dir=args.data_dir, seed=args.seed)
    if worked_example:
        from phasegrpo.data.prompts import add_worked_examples

        rows = add_worked_examples(rows)
    result = evaluate_rows(
        model, tokenizer, rows, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        samples_per_row=args.samples_per_row, temperature=args.temperature, top_p=args.top_p, seed=args.seed,
        show_progress=not args.no_progress, router=router, device=args.device,
    )
    result["settings"].update(model=model_name or "embedded", adapter=adapter, data_source=args.data_source)
    settings = result["settings"]
    print(f"\n{settings['decoding']}, {settings['samples_per_row']} completion(s) per row, {result['seconds']:.0f} s "
          f"({len(result['samples']) / max(result['seconds'], 1e-9):.2f} completions/s on {settings['generation']}, batch {settings['batch_size']})")
    print(format_table(result["summary"]))
    if output:
        print(f"Results: {write_result(output, result)}")
    return 0


def _rewards_explain(args) -> int:
    from pathlib import Path

    from phasegrpo.config import preset
    from phasegrpo.domains import get_domain
    from phasegrpo.router import RewardRouter

    get_domain(args.domain)  # an unknown domain is an error naming the known ones, not a silent 0

    schedule = None
    if args.run_dir:
        config = _saved_config(args.run_dir)
        if config is None:
            raise FileNotFoundError(f"{args.run_dir} has no config.json. Pass the --output-dir of a training run.")
        from phasegrpo.curriculum import load_schedule
        from phasegrpo.run_folder import latest_complete_checkpoint

        checkpoint = latest_complete_checkpoint(Path(args.run_dir))
        schedule = load_schedule(checkpoint) if checkpoint is not None else None
    else:
        config = preset(args.preset)
    completion = args.completion
    if completion.startswith("@"):
        completion = sys.stdin.read() if completion == "@-" else Path(completion[1:]).read_text()
    router = RewardRouter.from_config(config, schedule=schedule)  # carries the config's reward values
    row = {"domain": args.domain, "answer": args.answer, "tests": list(args.tests), "setup_code": args.setup_code}
    explanation = router.explain(completion, row, step=args.step, max_steps=args.max_steps or config.max_steps)
    print(explanation.table())
    return 0


def _saved_config(run_dir):
    """The Config a run folder was trained with, or None when it has none."""
    from pathlib import Path

    from phasegrpo import run_folder
    from phasegrpo.config import from_dict

    path = Path(run_dir) / run_folder.CONFIG_FILE
    return from_dict(json.loads(path.read_text())) if path.exists() else None


def _report(args) -> int:
    from phasegrpo.report import write_report

    report = write_report(args.run_dir)
    for path in report.plots.values():
        print(path)
    for note in report.notes:
        print(f"note: {note}")
    print(f"Report: {report.html}  (open it in a browser; summary: {report.markdown})")
    return 0


def _export(args) -> int:
    from phasegrpo import export

    if not (args.merged or args.gguf or args.push_to_hub):
        raise ValueError("Nothing to export: pass --merged OUT, --gguf OUT.gguf and/or --push-to-hub REPO.")
    if args.push_to_hub:
        export.hub_token()  # not logged in: say so before minutes of merging
    merged = export.merged_model(args.run_dir) if (args.merged or args.gguf) else None
    if args.merged:
        print(f"Merged model: {export.export_merged(args.run_dir, args.merged, model_and_tokenizer=merged)}")
    if args.gguf:
        print(f"GGUF: {export.export_gguf(args.run_dir, args.gguf, args.gguf_type, model_and_tokenizer=merged)}")
    if args.push_to_hub:
        url = export.push_run(args.run_dir, args.push_to_hub, folder=args.merged, private=args.private)
        print(f"Uploaded {'the merged model' if args.merged else 'the adapter'} to {url}")
    return 0


def _generate(args) -> int:
    from pathlib import Path

    from phasegrpo.inference import generate_for_run, run_config

    prompt = args.prompt
    if prompt.startswith("@"):
        prompt = sys.stdin.read() if prompt == "@-" else Path(prompt[1:]).read_text()
    if args.domain is None and run_config(args.run_dir).worked_example:
        print("note: this run trained with a worked example before each question; pass --domain (math, code, science, "
              "logic) to show one as in training.", file=sys.stderr)
    print(generate_for_run(args.run_dir, prompt, domain=args.domain, max_new_tokens=args.max_new_tokens,
                           temperature=args.temperature, dtype=args.dtype))
    return 0


def _study(args) -> int:
    from phasegrpo.config import override
    from phasegrpo.studies import default_config, study
    from phasegrpo.studies.runner import estimate_seconds, make_plan

    overrides = _config_overrides(args)
    # In a study, --output-dir is the study folder and --eval-rows-per-domain its held-out rows.
    output_dir = overrides.pop("output_dir", args.study_output_default)
    eval_rows = overrides.pop("eval_rows_per_domain", args.study_eval_rows_default)
    if args.config:
        if args.preset:
            raise ValueError(f"--preset {args.preset} and --config {args.config} both given; pass one of them.")
        from phasegrpo.config_files import load_config_file

        config = override(load_config_file(args.config), **overrides)
    else:
        config = default_config(args.preset or DEFAULT_PRESET, **overrides)
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    seeds = int(args.seeds) if args.seeds.strip().isdigit() else [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    settings = dict(arms=arms, seeds=seeds, eval_rows_per_domain=eval_rows, eval_seed=args.eval_seed, eval_batch_size=args.eval_batch_size)
    if args.print_plan:
        plan = make_plan(config, study_dir=output_dir, **settings)
        for arm, changes in plan.differences.items():
            print(f"{arm}: " + ("; ".join(f"{name} = {json.dumps(values[1])}" for name, values in changes.items()) or "the base config"))
        for run in plan.runs:
            print(f"  {run.run_dir}  seed {run.seed}")
        print(f"{len(plan.runs)} runs x {config.max_steps} steps; rough estimate {estimate_seconds(plan) / 60:.0f} min on 2 CPU cores")
        return 0
    result = study(config, output_dir=output_dir, overwrite=args.overwrite, show_progress=not args.no_progress, **settings)
    print(f"\nStudy folder: {result.study_dir}  ({result.summary['runs_finished']} of {result.summary['runs_planned']} runs finished)")
    for path in (result.json, result.markdown, *result.plots.values()):
        print(f"  {path}")
    print(f"Report: {result.html}  (open it in a browser)")
    return 130 if result.was_interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
