"""Reward cost: 1,000 mixed non-code completions through all five reward functions.

The mix imitates what a policy writes early and late in training, over math, science and logic rows:
gold answers in the exact format, wrong and hedged answers, `$1,234` and `\\boxed{}` dressing,
LaTeX that goes to math-verify, prose without tags, refusals, rambling and looping replies,
text after `</answer>`. Prints the time of the first call (which imports math-verify once per
process), the warm time (median of repeats), the time per function, and the warm time as a
share of one demo training step, whose length is an argument (default 30 s: the demo preset's
step on 2 CPU cores, generation included; pass your own measurement). Usage:
    python benchmarks/bench_rewards.py [--completions 1000] [--repeats 5] [--step-seconds 30]
"""

import argparse
import random
import statistics
import time

from phasegrpo.formats import render
from phasegrpo.rewards import REWARD_FUNCTIONS

SCIENCE_PROMPT = [
    {"role": "user", "content": "Which gas do plants take in?\nA) oxygen\nB) carbon dioxide\nC) nitrogen\nD) helium\nAnswer with the letter."}
]


def mixed_batch(count: int, seed: int = 0) -> tuple[list[str], dict[str, list]]:
    """`count` completions with their row columns, the same for a given seed."""
    rng = random.Random(seed)
    completions, columns = [], {"domain": [], "answer": [], "prompts": [], "tests": [], "setup_code": []}
    for index in range(count):
        domain = ("math", "science", "logic")[index % 3]
        number = rng.randint(-50, 5000)
        reasoning = f"We have {number} items and add {index % 7} more, then remove {index % 7}. So {number} remain."
        if domain == "math":
            reference = str(number)
            answers = [str(number), f"${number:,}", f"\\boxed{{{number}}}", f"The answer is {number + 1}.", f"{number} or {number + 2}", f"\\frac{{{2 * number}}}{{2}}", f"{number}.0 dollars", f"\\sqrt{{{number * number}}}"]
        elif domain == "science":
            reference = "B"
            answers = ["B", "(b)", "B) carbon dioxide", "carbon dioxide", "A or B", "C", "The answer is B."]
        else:
            reference = rng.choice(["yes", "no"])
            answers = ["Yes.", "no", "TRUE", "yes and no", "False.", "The answer is yes"]
        answer = rng.choice(answers)
        shape = rng.random()
        if shape < 0.55:
            text = render(reasoning, answer)
        elif shape < 0.65:
            text = f"{reasoning} The answer is {answer}."
        elif shape < 0.70:
            text = "I'm sorry, but I can't help with that."
        elif shape < 0.80:
            text = render(reasoning + " Wait, let me re-check. Hmm, " + reasoning, answer) + "\nHope this helps! Let me know if you need more."
        elif shape < 0.90:
            text = render((reasoning + " ") * rng.randint(5, 25), answer)
        else:
            text = f"<reasoning>{reasoning}</reasoning><answer>{answer}</answer><answer>{answer}</answer>"
        if rng.random() < 0.5:
            text = [{"role": "assistant", "content": text}]
        completions.append(text)
        columns["domain"].append(domain)
        columns["answer"].append(reference)
        columns["prompts"].append(SCIENCE_PROMPT)
        columns["tests"].append([])
        columns["setup_code"].append("")
    return completions, columns


def score_all(completions, columns) -> dict[str, float]:
    seconds = {}
    for name, function in REWARD_FUNCTIONS.items():
        start = time.perf_counter()
        function(completions, **columns)
        seconds[name] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--step-seconds", type=float, default=30.0, help="one demo training step, in seconds (default 30)")
    args = parser.parse_args()
    # A fresh batch per run (new seed), as every training step brings new text: math-verify's
    # cache only helps with repeats inside a batch, as GRPO groups produce.
    first = sum(score_all(*mixed_batch(args.completions, seed=0)).values())
    runs = [score_all(*mixed_batch(args.completions, seed=1 + repeat)) for repeat in range(args.repeats)]
    totals = [sum(run.values()) for run in runs]
    warm = statistics.median(totals)
    print(f"{args.completions} mixed non-code completions (math, science, logic), all five reward functions:")
    print(f"  first call (imports math-verify): {first * 1000:8.1f} ms")
    print(f"  warm, median of {args.repeats}:          {warm * 1000:8.1f} ms  ({warm / args.completions * 1e6:.0f} us per completion)")
    for name in REWARD_FUNCTIONS:
        print(f"    {name:<30} {statistics.median(run[name] for run in runs) * 1000:8.1f} ms")
    print(
        f"  = {warm / args.step_seconds:.2%} of one demo training step of {args.step_seconds:g} s "
        f"(first call: {first / args.step_seconds:.2%}); --step-seconds sets the step length."
    )


if __name__ == "__main__":
    main()
