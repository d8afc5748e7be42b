"""The Hub loaders, exercised on real rows in the Hub schema from ../shared/data."""

import json
from pathlib import Path

import datasets
import pytest

from phasegrpo.data import COLUMNS, load_domain, load_mixture
from phasegrpo.data.loading import files_for_split
from phasegrpo.domains import reference_weights
from phasegrpo.sandbox import Program, run_programs

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def data():
    if not (SHARED_DATA / "gsm8k" / "train.jsonl").is_file():
        pytest.fail(f"The offline dataset samples are missing: expected {SHARED_DATA} (the shared folder beside the repo).")
    return SHARED_DATA


def raw_rows(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def user_text(row):
    return row["prompt"][-1]["content"]


def check_contract(dataset, domain, count):
    assert len(dataset) == count
    assert set(COLUMNS) <= set(dataset.column_names)
    assert set(dataset["domain"]) == {domain}
    assert all(row["answer"] for row in dataset)
    assert all([m["role"] for m in row] == ["system", "user"] for row in dataset["prompt"])


@pytest.mark.parametrize("split", ["train", "test"])
def test_gsm8k_answer_is_the_number_after_hashes(data, split):
    dataset = load_domain("math", data_files=data / "gsm8k" / f"{split}.jsonl", split=split)
    check_contract(dataset, "math", 300)
    raw = raw_rows(data / "gsm8k" / f"{split}.jsonl")
    for row, source in zip(dataset, raw, strict=True):
        assert row["answer"] == source["answer"].split("####")[-1].strip().replace(",", "")
        assert float(row["answer"]) == float(row["answer"])
        assert source["question"] in user_text(row)
        assert row["tests"] == [] and row["setup_code"] == ""
    assert dataset[0]["answer"] == ("72" if split == "train" else "18")
    assert dataset[0]["id"] == f"{split}-0" and dataset[0]["source"] == "openai/gsm8k"


def test_mbpp_full_keeps_tests_setup_and_reference(data):
    dataset = load_domain("code", data_files=data / "mbpp" / "test.jsonl", split="test")
    check_contract(dataset, "code", 300)
    for row, source in zip(dataset, raw_rows(data / "mbpp" / "test.jsonl"), strict=True):
        assert row["tests"] == source["test_list"]
        assert row["setup_code"] == source["test_setup_code"]
        assert row["answer"] == source["code"].replace("\r\n", "\n")
        assert row["id"] == str(source["task_id"])
        assert source["text"] in user_text(row) and source["test_list"][0].strip() in user_text(row)
    assert "Function: remove_Occ(s, ch)" in user_text(dataset[0])


def test_mbpp_sanitized_takes_setup_from_test_imports(data):
    dataset = load_domain("code", "mbpp_sanitized", data_files=data / "mbpp" / "sanitized_test.jsonl", split="test")
    check_contract(dataset, "code", 257)
    raw = raw_rows(data / "mbpp" / "sanitized_test.jsonl")
    with_imports = 0
    for row, source in zip(dataset, raw, strict=True):
        assert row["tests"] == source["test_list"]
        assert row["setup_code"] == "\n".join(source["test_imports"])
        with_imports += bool(source["test_imports"])
    assert with_imports > 0


def test_mbpp_references_pass_their_tests_in_the_sandbox(data):
    rows = list(load_domain("code", data_files=data / "mbpp" / "test.jsonl", limit=8))
    rows += list(load_domain("code", data_files=data / "mbpp" / "sanitized_test.jsonl").filter(lambda r: bool(r["setup_code"])).select(range(4)))
    verdicts = run_programs([Program(row["answer"], row["tests"], row["setup_code"]) for row in rows])
    assert [(v.passed, v.total) for v in verdicts] == [(len(row["tests"]),) * 2 for row in rows]


def test_arc_maps_numeric_labels_to_letters(data):
    dataset = load_domain("science", data_files=data / "arc_easy" / "test.jsonl", split="test")
    check_contract(dataset, "science", 300)
    numeric = three = 0
    for row, source in zip(dataset, raw_rows(data / "arc_easy" / "test.jsonl"), strict=True):
        labels, texts = source["choices"]["label"], source["choices"]["text"]
        position = labels.index(source["answerKey"])
        assert row["answer"] == "ABCDE"[position]
        assert f"{row['answer']}) {texts[position].strip()}" in user_text(row)
        numeric += labels[0] == "1"
        three += len(labels) == 3
        assert row["id"] == source["id"]
    assert numeric == 10 and three == 1


def test_strategyqa_booleans_become_yes_no(data):
    dataset = load_domain("logic", data_files=data / "strategyqa" / "train.jsonl")
    check_contract(dataset, "logic", 300)
    assert dataset["answer"].count("yes") == 132 and dataset["answer"].count("no") == 168
    assert dataset[0]["id"] == "b8677742616fef051f00" and "Genghis Khan" in user_text(dataset[0])


def test_strategyqa_accepts_chilled_rows_and_the_original_release_json(data, tmp_path):
    raw = raw_rows(data / "strategyqa" / "train.jsonl")[:6]
    chilled = tmp_path / "chilled.jsonl"  # facts as one string, no decomposition
    chilled.write_text(
        "\n".join(json.dumps({**{k: v for k, v in row.items() if k != "decomposition"}, "facts": " ".join(row["facts"])}) for row in raw)
    )
    original = tmp_path / "strategyqa_train.json"  # the release: one JSON array, with evidence
    original.write_text(json.dumps([{**row, "evidence": [[["no_evidence"]]]} for row in raw]))
    expected = ["yes" if row["answer"] else "no" for row in raw]
    assert load_domain("logic", data_files=chilled)["answer"] == expected
    assert load_domain("logic", data_files=original)["answer"] == expected


def test_parquet_files_load_too(data, tmp_path):
    path = tmp_path / "train.parquet"
    datasets.Dataset.from_list(raw_rows(data / "gsm8k" / "train.jsonl")[:20]).to_parquet(str(path))
    assert load_domain("math", data_files=path)["answer"][:2] == ["72", "10"]


def test_unusable_rows_are_dropped_counted_and_warned(data, tmp_path):
    raw = raw_rows(data / "gsm8k" / "train.jsonl")[:5]
    raw[1]["answer"] = "no final line"
    raw[3]["answer"] = "worked\n#### about ten"
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in raw))
    with pytest.warns(UserWarning, match=r"openai/gsm8k .*gsm8k\.jsonl.*dropped 2 unusable row\(s\) of 5"):
        dataset = load_domain("math", data_files=path)
    assert len(dataset) == 3

    mbpp = raw_rows(data / "mbpp" / "test.jsonl")[:3]
    mbpp[0]["test_list"] = []
    path = tmp_path / "mbpp.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in mbpp))
    with pytest.warns(UserWarning, match=r"google-research-datasets/mbpp.*dropped 1 .*no tests"):
        assert len(load_domain("code", data_files=path)) == 2

    arc = raw_rows(data / "arc_easy" / "test.jsonl")[:2]
    for row in arc:
        row["answerKey"] = "Z"
    path = tmp_path / "arc.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in arc))
    with pytest.raises(ValueError, match=r"allenai/ai2_arc.*no usable science rows \(read 2\)"), pytest.warns(UserWarning):
        load_domain("science", data_files=path)


def test_limit_keeps_the_first_rows(data):
    dataset = load_domain("math", data_files=data / "gsm8k" / "train.jsonl", limit=7)
    assert len(dataset) == 7 and dataset[0]["answer"] == "72"


def test_hub_code_path_asks_for_the_reference_datasets(monkeypatch, data):
    calls = []
    samples = {"openai/gsm8k": "gsm8k/train.jsonl", "google-research-datasets/mbpp": "mbpp/test.jsonl",
               "allenai/ai2_arc": "arc_easy/test.jsonl", "ChilleD/StrategyQA": "strategyqa/train.jsonl"}

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(raw_rows(data / samples[path])[:3])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    sizes = {domain: len(dataset) for domain, dataset in load_mixture(reference_weights(), split="test").items()}
    assert sizes == {"math": 3, "code": 3, "science": 3, "logic": 3}
    assert calls == [
        ("openai/gsm8k", "main", "test"),
        ("google-research-datasets/mbpp", "full", "test"),
        ("allenai/ai2_arc", "ARC-Easy", "test"),
        ("ChilleD/StrategyQA", None, "test"),
    ]
    load_domain("code", "mbpp_sanitized", split="train")
    assert calls[-1] == ("google-research-datasets/mbpp", "sanitized", "train")


def test_load_mixture_reads_a_data_dir_by_split(data):
    with pytest.warns(UserWarning) as caught:
        loaded = load_mixture(reference_weights(), split="train", data_dir=data, limit=5)
    assert sorted(str(w.message).split(" has no")[0].split("/")[-1] for w in caught) == ["arc_easy", "mbpp"]
    assert any("arc_easy has no 'train' file; using test.jsonl" in str(w.message) for w in caught)
    assert list(loaded) == ["math", "code", "science", "logic"]
    assert loaded["math"][0]["id"] == "train-0"
    assert files_for_split(data / "mbpp", "test") == ([data / "mbpp" / "test.jsonl"], True)
    assert files_for_split(data / "strategyqa", "test") == ([data / "strategyqa" / "train.jsonl"], False)
    with pytest.warns(UserWarning, match="strategyqa has no 'test' file; using train.jsonl"):
        only_two = load_mixture({"math": 1, "code": 0, "logic": 2}, split="test", data_dir=data, limit=2)
    assert list(only_two) == ["math", "logic"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: load_domain("poetry"), "Unknown domain 'poetry'. Available: code, logic, math, science."),
        (lambda: load_domain("math", "mbpp"), "Unknown source 'mbpp' for domain 'math'. Available: hub, gsm8k, synthetic."),
        (lambda: load_domain("code", "github"), "Available: hub, mbpp, mbpp_sanitized, synthetic."),
        (lambda: load_domain("math", split="dev"), "openai/gsm8k has no split 'dev'. Available: train, test."),
        (lambda: load_domain("math", limit=0), "limit must be a positive integer"),
        (lambda: load_domain("math", data_files="/nonexistent/x.jsonl"), "not found"),
        (lambda: load_domain("math", data_files=__file__), "must be .json, .jsonl, .parquet files"),
        (lambda: load_mixture({"math": 1, "art": 1}), "Unknown domain"),
        (lambda: load_mixture([]), "No domains to load"),
    ],
)
def test_bad_inputs_are_clear_errors(call, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message.replace(".", r"\.").replace("(", r"\(")):
        call()
