"""The study's held-out evaluation: the same rows for every run, greedy, scored by one router."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phasegrpo.studies.runner import StudyPlan


def load_study_rows(plan: StudyPlan):
    """The held-out rows every run is evaluated on: `eval_rows_per_domain` of each trained domain
    from the test split (generated test items are disjoint from training items by construction;
    Hub rows come from the test splits), drawn with the study's own `eval_seed`, not a run's seed."""
    from phasegrpo.data.prompts import add_worked_examples
    from phasegrpo.evaluation import load_eval_rows
    from phasegrpo.training.setup import trained_domains

    base = plan.base
    rows = load_eval_rows(
        source=base.data_source, rows_per_domain=plan.eval_rows_per_domain, data_dir=base.data_dir,
        seed=plan.eval_seed, domains=trained_domains(base),
    )
    return add_worked_examples(rows) if base.worked_example else rows


def evaluate_model(model, tokenizer, rows, plan: StudyPlan, router, label: str, show_progress: bool) -> dict:
    """Greedy completions for `rows`, scored by `router` in its last phase; the evaluation result."""
    from phasegrpo.evaluation import evaluate_rows, format_table

    result = evaluate_rows(
        model, tokenizer, rows, max_new_tokens=plan.base.max_completion_length, batch_size=plan.eval_batch_size,
        router=router, show_progress=show_progress,
        decode_dtype=plan.base.rollout_dtype,  # as the runs' own rollouts and evals
    )
    print(f"\nEval {label} ({len(rows)} held-out rows, greedy, {result['seconds']:.0f} s):\n{format_table(result['summary'])}", flush=True)
    return result
