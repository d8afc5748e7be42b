"""Train on your own local files in the Hub schema instead of the Hub (docs/data.md).

    phasegrpo train --config examples/custom_data.py
    PHASEGRPO_DATA_DIR=/data/mine phasegrpo train --config examples/custom_data.py

The folder holds one subfolder per dataset, named after the Hub dataset or the domain, with the
rows of each split in a file named after it, in the columns of the Hub version:

    my_data/gsm8k/train.jsonl        {"question": "...", "answer": "... #### 42"}
    my_data/arc_easy/test.jsonl      {"id": ..., "question": ..., "choices": {"text": [...], "label": [...]}, "answerKey": "B"}

Only the domains with a weight are read, so this run trains math and science. By default it
reads the sample rows in `shared/data` beside the project checkout; its ARC-Easy folder has only
a test file, which then serves both training and evaluation (the loader warns). Sized like the
demo (CPU).
"""

import os
from pathlib import Path

from phasegrpo import preset

DATA_DIR = os.environ.get("PHASEGRPO_DATA_DIR") or str(Path(__file__).resolve().parents[2] / "shared" / "data")

config = preset(
    "demo",
    output_dir="runs/custom_data",
    data_dir=DATA_DIR,
    domain_weights={"math": 0.6, "science": 0.4},
    rows_per_domain=200,
)
