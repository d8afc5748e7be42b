"""The merged decode copy of the LoRA policy (Config.rollout_dtype) gives the policy's logits, with the
adapter's current weights: after every optimizer step and after a checkpoint's weights are loaded."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from phasegrpo.config import preset
from phasegrpo.generation import sample_completions
from phasegrpo.rollout_copy import RolloutCopy

# bf16 keeps 8 bits of mantissa: the tiny model's logits (|x| < ~3) move by a few hundredths.
BF16_LOGIT_TOLERANCE = 0.05


def lora_policy(tiny, seed=1):
    model, _ = tiny
    policy = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:  # a trained adapter: it changes the outputs
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return policy


def logits(model, input_ids):
    with torch.no_grad():
        return model(input_ids=input_ids).logits.float()


INPUT_IDS = torch.randint(10, 60, (3, 24), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-4), (torch.bfloat16, BF16_LOGIT_TOLERANCE)])
def test_the_copy_gives_the_policys_logits_with_its_adapter(tiny, dtype, tolerance):
    policy = lora_policy(tiny)
    copy = RolloutCopy(dtype).model_for(policy)
    with policy.disable_adapter():
        base_logits = logits(policy, INPUT_IDS)
    assert (logits(policy, INPUT_IDS) - base_logits).abs().max() > 10 * tolerance  # the adapter matters
    assert (logits(copy, INPUT_IDS) - logits(policy, INPUT_IDS)).abs().max() < tolerance
    assert all(parameter.dtype == dtype for parameter in copy.parameters())


@pytest.mark.parametrize("make_optimizer", [
    lambda parameters: torch.optim.SGD(parameters, lr=1.0),
    # transformers' default optimizer: updates the weights without bumping their version counters
    lambda parameters: torch.optim.AdamW(parameters, lr=0.1, fused=True),
], ids=["sgd", "adamw-fused"])
def test_the_copy_follows_every_optimizer_step(tiny, make_optimizer):
    policy = lora_policy(tiny)
    rollout_copy = RolloutCopy(torch.float32)
    first = rollout_copy.model_for(policy)
    stale = logits(first, INPUT_IDS)
    optimizer = make_optimizer([p for p in policy.parameters() if p.requires_grad])
    policy(input_ids=INPUT_IDS).logits.logsumexp(-1).sum().backward()
    optimizer.step()
    current = rollout_copy.model_for(policy)
    assert current is first  # re-merged in place, not rebuilt
    assert (logits(current, INPUT_IDS) - stale).abs().max() > 1e-3
    assert (logits(current, INPUT_IDS) - logits(policy, INPUT_IDS)).abs().max() < 1e-4


def test_the_copy_follows_weights_loaded_on_resume(tiny):
    policy = lora_policy(tiny, seed=1)
    rollout_copy = RolloutCopy(torch.float32)
    rollout_copy.model_for(policy)
    checkpoint = {name: p.detach() * 0 + torch.randn(p.shape) * 0.5 for name, p in policy.named_parameters() if "lora_" in name}
    policy.load_state_dict(checkpoint, strict=False)  # how Trainer restores the adapter from a checkpoint
    assert (logits(rollout_copy.model_for(policy), INPUT_IDS) - logits(policy, INPUT_IDS)).abs().max() < 1e-4


def test_greedy_rollouts_from_the_float32_copy_equal_the_policys(tiny):
    policy = lora_policy(tiny)
    _, tokenizer = tiny
    prompts = [tokenizer("<start_of_turn>user\nwhat is 2 + 2?<end_of_turn>\n")["input_ids"], [5, 6, 7]]
    settings = dict(max_new_tokens=10, temperature=0.0, end_token_ids=[], pad_token_id=tokenizer.pad_token_id, stop_text=None)
    assert sample_completions(RolloutCopy(torch.float32).model_for(policy), prompts, **settings) == sample_completions(policy, prompts, **settings)


def test_rollout_dtype_needs_phasegrpos_rollouts():
    with pytest.raises(ValueError, match="rollout_dtype 'bfloat16' applies to phasegrpo's own rollouts"):
        preset("seed", rollout_dtype="bfloat16")
    with pytest.raises(ValueError, match="rollout_dtype must be model, bfloat16 or float32"):
        preset("demo", rollout_dtype="int8")
    with pytest.raises(ValueError, match="training_autocast must be none or bfloat16"):
        preset("demo", training_autocast="float16")
    assert preset("seed").rollout_dtype == "model" and preset("seed").training_autocast == "none"  # exact on a GPU
    assert preset("demo").rollout_dtype == "bfloat16" and preset("demo").training_autocast == "bfloat16"
    assert preset("demo", fast_cpu_generation=False).rollout_dtype == "model"  # the bf16 copy goes with the loop it belongs to


def completion_length_reward(completions, **kwargs):
    """Varies within every group, so each step moves the adapter."""
    return [len(str(c)) / 10.0 for c in completions]


def test_training_decodes_with_the_current_adapter_merged_also_after_resume(tmp_path, tiny, monkeypatch):
    """Every rollout of a real run (interrupted, then resumed from its checkpoint) comes from a copy
    whose logits are the policy's, and the policy it follows has learned (non-zero LoRA B)."""
    import os
    import signal

    from tiny import tiny_model
    from transformers import TrainerCallback

    from phasegrpo.training import train

    calls = []
    original = RolloutCopy.model_for

    def checked_model_for(self, policy):
        copy = original(self, policy)
        was_training = policy.training
        policy.eval()
        difference = float((logits(copy, INPUT_IDS) - logits(policy, INPUT_IDS)).abs().max())
        policy.train(was_training)
        has_learned = any(p.abs().sum() > 0 for n, p in policy.named_parameters() if "lora_B" in n)
        calls.append((difference, has_learned))
        return copy

    monkeypatch.setattr(RolloutCopy, "model_for", checked_model_for)

    class InterruptAtStep1(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 1:
                os.kill(os.getpid(), signal.SIGINT)

    model, tokenizer = tiny
    config = preset("demo", model="tiny", output_dir=str(tmp_path / "run"), max_steps=3, max_completion_length=16,
                    rows_per_domain=8, save_steps=100, eval_before_after=False, learning_rate=1e-2,
                    rollout_dtype="float32", training_autocast="bfloat16",
                    phase_rewards=[["completion_length_reward"]] * 3)
    rewards = {"completion_length_reward": completion_length_reward}
    first = train(config, model=model, tokenizer=tokenizer, reward_functions=rewards, callbacks=[InterruptAtStep1()],
                  show_progress=False)
    assert first.was_interrupted and [learned for _, learned in calls] == [False, True]  # steps 0 and 1
    calls.clear()
    second = train(config, resume=True, model=tiny_model(tokenizer), tokenizer=tokenizer, reward_functions=rewards,
                   show_progress=False)
    assert second.global_step == 3 and [learned for _, learned in calls] == [True]  # step 2, from the checkpoint
    assert all(difference < 1e-4 for difference, _ in calls)
