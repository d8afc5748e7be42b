"""Add your own reward and enable it in a phase: here a bonus for short reasoning in phase 2.

    phasegrpo train --config examples/custom_reward.py
    phasegrpo train --config examples/custom_reward.py --resume     # the file registers the reward again

A reward is a TRL reward function, `f(completions, **kwargs) -> list[float]`: one finite value
per completion; `kwargs` carries the row's columns (`domain`, `answer`, ...). It gets the same
gating, weight and domain scale as the built-in rewards. Sized like the demo (CPU, minutes).
"""

from phasegrpo import preset
from phasegrpo.config import REFERENCE_PHASE_REWARDS
from phasegrpo.formats import completion_text, extract_reasoning
from phasegrpo.router import register_reward


def concise_reasoning(completions, **kwargs) -> list[float]:
    """+0.5 for reasoning under 60 words, falling to 0 at 200 words; 0 without a <reasoning> block."""
    scores = []
    for completion in completions:
        reasoning = extract_reasoning(completion_text(completion))
        if reasoning is None:
            scores.append(0.0)
            continue
        words = len(reasoning.split())
        scores.append(0.5 * min(1.0, max(0.0, (200 - words) / 140)))
    return scores


register_reward("concise_reasoning", concise_reasoning)

config = preset(
    "demo",
    output_dir="runs/custom_reward",
    phase_rewards=[*map(list, REFERENCE_PHASE_REWARDS[:2]), [*REFERENCE_PHASE_REWARDS[2], "concise_reasoning"]],
    reward_weights={"concise_reasoning": 1.0},
)
