"""Science: multiple choice, answered with the letter. Generated fact questions, and ARC-Easy from the Hub.

The user prompt is the question, the choices as `A) text` lines, then `Answer with the letter.`;
`check_answer` compares the letter (or the choice's text) in `<answer>` with the row's `answer`
(the "science" checker). Generated questions (3 or 4 choices) come from small fact tables:
each maps a category to members, and a question asks for the member of one category among
members of the others, or for the category of one member. Tables only hold members that belong
to exactly one category, so every question has exactly one right choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from phasegrpo.data._rows import make_row
from phasegrpo.data.hub import HubDataset, UnusableRow
from phasegrpo.data.prompts import conversation
from phasegrpo.domains import Domain, register_domain
from phasegrpo.formats import render

CHOICE_LABELS = "ABCDEFGH"


def science_prompt(question: str, choices: Sequence[str]) -> list[dict[str, str]]:
    """Choices are listed as `A) text` lines, always lettered (the answer is the letter)."""
    if not 2 <= len(choices) <= len(CHOICE_LABELS):
        raise ValueError(f"A science question needs 2 to {len(CHOICE_LABELS)} choices, got {len(choices)}.")
    lines = "\n".join(f"{label}) {text.strip()}" for label, text in zip(CHOICE_LABELS, choices, strict=False))  # more labels than choices
    return conversation(f"{question.strip()}\n{lines}\nAnswer with the letter.")


# --- generated questions ---------------------------------------------------------------------

# (question about a member, {category: members}); "{category}" is filled in.
_MEMBER_TABLES = (
    (
        "Which of these animals is a {category}?",
        {
            "mammal": ("dog", "cat", "whale", "horse", "cow", "bat", "lion", "mouse", "rabbit", "elephant", "dolphin", "bear"),
            "bird": ("eagle", "sparrow", "penguin", "owl", "parrot", "chicken", "duck", "crow"),
            "fish": ("salmon", "shark", "tuna", "goldfish", "trout", "cod"),
            "reptile": ("snake", "lizard", "turtle", "crocodile"),
            "insect": ("ant", "bee", "butterfly", "beetle", "fly", "grasshopper"),
            "amphibian": ("frog", "toad", "salamander", "newt"),
        },
    ),
    (
        "Which of these is a {category} at room temperature?",
        {
            "solid": ("rock", "iron nail", "wooden block", "coin", "brick", "glass marble"),
            "liquid": ("water", "milk", "orange juice", "cooking oil", "vinegar"),
            "gas": ("oxygen", "helium", "carbon dioxide", "nitrogen", "neon"),
        },
    ),
    (
        "Which of these is {category}?",
        {
            "attracted by a magnet": ("an iron nail", "a steel paper clip", "iron filings", "a steel screw"),
            "not attracted by a magnet": ("a wooden spoon", "a plastic cup", "a rubber band", "a paper towel", "a glass jar"),
        },
    ),
    (
        "Which of these {category}?",
        {
            "conducts electricity well": ("a copper wire", "an aluminum foil strip", "a steel spoon", "an iron nail"),
            "is an electrical insulator": ("a rubber glove", "a plastic ruler", "a wooden stick", "a cotton cloth", "a glass cup"),
        },
    ),
    (
        "Which of these animals {category}?",
        {
            "eats only plants": ("cow", "rabbit", "deer", "sheep", "horse", "giraffe", "goat"),
            "eats only meat": ("lion", "wolf", "tiger", "shark", "owl", "leopard"),
        },
    ),
    (
        "Which of these is a {category} energy source?",
        {
            "renewable": ("sunlight", "wind", "flowing water", "geothermal heat"),
            "non-renewable": ("coal", "oil", "natural gas"),
        },
    ),
    (
        "Which unit measures {category}?",
        {
            "length": ("meter", "centimeter", "kilometer", "inch", "mile"),
            "mass": ("kilogram", "gram", "pound"),
            "time": ("second", "minute", "hour"),
            "volume": ("liter", "milliliter", "gallon"),
        },
    ),
)

# (question, right answer, wrong answers): single facts, with distractors drawn from the list.
_FACTS = (
    ("Which organ pumps blood around the body?", "heart", ("lungs", "stomach", "brain", "skin", "kidney")),
    ("Which organ takes in oxygen from the air?", "lungs", ("heart", "stomach", "brain", "liver", "bones")),
    ("Which organ controls the body and thinking?", "brain", ("heart", "lungs", "stomach", "liver")),
    ("Which part of a plant takes in water from the soil?", "roots", ("leaves", "flowers", "seeds", "fruit")),
    ("Which part of a plant makes food using sunlight?", "leaves", ("roots", "seeds", "bark", "flowers")),
    ("Which planet is closest to the Sun?", "Mercury", ("Earth", "Mars", "Jupiter", "Saturn", "Neptune")),
    ("Which planet is the largest?", "Jupiter", ("Mercury", "Earth", "Mars", "Venus")),
    ("Which planet is known as the red planet?", "Mars", ("Jupiter", "Venus", "Neptune", "Saturn")),
    ("What does a plant need to make its food?", "sunlight", ("sand", "darkness", "salt", "plastic")),
    ("What is the main source of light for Earth?", "the Sun", ("the Moon", "Mars", "the ocean", "clouds")),
    ("What happens to water when it freezes?", "it becomes ice", ("it becomes steam", "it disappears", "it becomes salt")),
    ("What happens to ice when it is heated?", "it melts", ("it freezes", "it grows", "it becomes rock")),
    ("What force pulls objects toward the ground?", "gravity", ("magnetism", "friction", "sound", "light")),
    ("Which tool measures temperature?", "thermometer", ("ruler", "scale", "clock", "compass")),
    ("Which tool measures mass?", "balance scale", ("thermometer", "ruler", "clock", "compass")),
    ("Which tool shows direction (north or south)?", "compass", ("thermometer", "ruler", "scale", "clock")),
    ("What do bees collect from flowers?", "nectar", ("sand", "leaves", "bark", "rocks")),
    ("What gas do plants take in from the air?", "carbon dioxide", ("helium", "neon", "hydrogen")),
    ("Which of these is a source of sound?", "a ringing bell", ("a shadow", "a rock", "a glass of water")),
    ("How many legs does an insect have?", "six", ("four", "eight", "ten", "two")),
    ("How many legs does a spider have?", "eight", ("six", "four", "ten", "two")),
    ("What covers the body of a bird?", "feathers", ("scales", "fur", "shell")),
    ("What covers the body of a fish?", "scales", ("feathers", "fur", "hair")),
)


def _member_question(rng):
    template, table = _MEMBER_TABLES[rng.integers(len(_MEMBER_TABLES))]
    categories = list(table)
    category = categories[rng.integers(len(categories))]
    right = table[category][rng.integers(len(table[category]))]
    wrong_pool = [member for other in categories if other != category for member in table[other]]
    count = min(int(rng.integers(2, 4)), len(wrong_pool))
    wrong = [wrong_pool[i] for i in rng.choice(len(wrong_pool), size=count, replace=False)]
    return template.format(category=category), right, wrong


def _category_question(rng):
    # "A salmon is a kind of what?": only the animal table reads naturally this way.
    table = _MEMBER_TABLES[0][1]
    categories = list(table)
    category = categories[rng.integers(len(categories))]
    member = table[category][rng.integers(len(table[category]))]
    others = [other for other in categories if other != category]
    wrong = [others[i] for i in rng.choice(len(others), size=int(rng.integers(2, 4)), replace=False)]
    return f"What kind of animal is a {member}?", category, wrong


def _fact_question(rng):
    question, right, wrong_pool = _FACTS[rng.integers(len(_FACTS))]
    count = min(int(rng.integers(2, 4)), len(wrong_pool))
    wrong = [wrong_pool[i] for i in rng.choice(len(wrong_pool), size=count, replace=False)]
    return question, right, wrong


_TEMPLATES = (_member_question, _member_question, _category_question, _fact_question)


def generate(rng: np.random.Generator) -> dict:
    """One question of a random template, its choices shuffled, as row fields."""
    question, right, wrong = _TEMPLATES[rng.integers(len(_TEMPLATES))](rng)
    choices = [right, *wrong]
    order = rng.permutation(len(choices))
    choices = [choices[i] for i in order]
    answer_index = int(np.flatnonzero(order == 0)[0])
    return {"prompt": science_prompt(question, choices), "answer": CHOICE_LABELS[answer_index]}


# --- ARC-Easy --------------------------------------------------------------------------------


def _arc(row: dict, fallback_id: str) -> dict:
    choices = row.get("choices") or {}
    texts, labels = list(choices.get("text") or []), [str(label).strip() for label in choices.get("label") or []]
    key = str(row.get("answerKey") or "").strip()
    if not row.get("question") or len(texts) != len(labels) or not 2 <= len(texts) <= len(CHOICE_LABELS):
        raise UnusableRow("no question or malformed choices")
    if key not in labels:
        raise UnusableRow(f"answerKey {key!r} is not among the labels {labels}")
    # Some rows label choices 1-4; prompts always letter them, so the answer is the letter
    # at the key's position.
    return make_row(
        prompt=science_prompt(row["question"], texts),
        domain="science",
        answer=CHOICE_LABELS[labels.index(key)],
        source="allenai/ai2_arc",
        id=str(row.get("id") or fallback_id),
    )


ARC_EASY = HubDataset(
    "arc_easy", "science", "allenai/ai2_arc", "ARC-Easy", _arc,
    splits={"train": "train", "test": "test", "validation": "validation"},
)

# A fixed item the generator never produces: its tables hold neither "ice" nor "stone".
WORKED_EXAMPLE = (
    science_prompt("Which of these is a liquid at room temperature?", ["ice", "water", "stone"]),
    render("Water flows at room temperature; ice and stone are solid.", "B"),
)

register_domain(
    Domain(
        name="science",
        checker="science",
        generate=generate,
        worked_example=WORKED_EXAMPLE,
        hub_datasets=(ARC_EASY,),
        data_dir_folders=("arc_easy", "science"),
        weight=0.20,
        scale=0.8,
        seed_key=2,
    )
)
