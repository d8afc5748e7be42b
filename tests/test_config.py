import json

import pytest

from phasegrpo.config import Config, from_dict, preset


def test_seed_preset_is_the_reference_setup():
    config = preset("seed")
    assert config.model == "google/gemma-3-1b-it"
    assert (config.num_generations, config.beta, config.epsilon, config.temperature, config.max_completion_length) == (4, 0.08, 0.2, 0.9, 512)
    assert config.domain_weights == {"math": 0.35, "code": 0.30, "science": 0.20, "logic": 0.15}
    assert config.domain_scales == {"math": 1.0, "code": 1.2, "science": 0.8, "logic": 0.7}
    assert config.data_source == "hub" and config.lora_r > 0


def test_demo_preset_keeps_what_the_method_needs():
    config = preset("demo")
    assert config.model == "embedded" and config.data_source == "synthetic"
    assert config.max_completion_length >= 96
    assert config.prompts_per_step >= 2 and config.num_generations >= 4
    assert config.max_steps >= 4  # steps start at 0, 1/4, 2/4, 3/4: all three phases


def test_overrides_and_saved_config_round_trip():
    config = preset("demo", max_steps=12, domain_weights={"math": 1.0})
    assert from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"domain_weights": {"math": -1.0, "code": 1.0}}, "must be >= 0"),
        ({"domain_weights": {"math": 0.0}}, "at least one positive"),
        ({"num_generations": 1}, "num_generations must be >= 2"),
        ({"phase_boundaries": [0.8, 0.2]}, "phase_boundaries"),
        ({"scale_rewards": "sometimes"}, "scale_rewards"),
        ({"prompts_per_step": 3, "gradient_accumulation_steps": 2}, "multiple of gradient_accumulation_steps"),
    ],
)
def test_invalid_configs_name_the_problem(overrides, message):
    with pytest.raises(ValueError, match=message):
        preset("demo", **overrides)


def test_unknown_preset_and_field_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown preset 'fast'. Available: demo, seed."):
        preset("fast")
    with pytest.raises(ValueError, match="Unknown config field"):
        preset("demo", max_stepz=3)



def test_an_invalid_config_cannot_be_made_by_any_route():
    import dataclasses

    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        Config(max_steps=0)
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        dataclasses.replace(Config(), max_steps=0)
    with pytest.raises(ValueError, match="num_generations must be >= 2"):
        from_dict({**Config().to_dict(), "num_generations": 1})


def test_every_preset_has_its_values_as_data_for_help():
    from phasegrpo.config import PRESET_VALUES, PRESETS, preset_field_values

    assert set(PRESET_VALUES) == set(PRESETS)  # a new preset needs its values in PRESET_VALUES for --help
    for name in PRESETS:
        assert preset(name) == Config(**PRESET_VALUES[name])
    assert preset_field_values("max_steps") == {"demo": 8, "seed": 300}
