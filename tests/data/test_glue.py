"""GLUE TSV reader: the real files' row counts and label balances, and file:line errors for bad input."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from hypothesis import given
from hypothesis import strategies as st

from albert.data.glue import LAYOUTS, from_hub_format, load_glue, read_tsv
from albert.errors import AlbertError
from assertions import one_line_error
from strategies import GARBAGE, HYPOTHESIS

DATA = Path(os.environ.get("ALBERT_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
GLUE = DATA / "glue"
needs_data = pytest.mark.skipif(not (GLUE / "RTE" / "dev.tsv").is_file(), reason=f"GLUE data not found under {DATA}")

# glue/PROVENANCE.md: (train rows, train label counts), (dev rows, dev label counts); ids follow the
# hub's ClassLabel order (RTE/QNLI: 0 = entailment).
COUNTS = {
    "cola": ((8551, {1: 6023, 0: 2528}), (1043, {1: 721, 0: 322})),
    "sst2": ((67349, {1: 37569, 0: 29780}), (872, {1: 444, 0: 428})),
    "mrpc": ((3668, {1: 2474, 0: 1194}), (408, {1: 279, 0: 129})),
    "rte": ((2490, {0: 1249, 1: 1241}), (277, {0: 146, 1: 131})),
    "qnli": (None, (5463, {0: 2702, 1: 2761})),
    "stsb": ((5749, None), (1500, None)),
}


@needs_data
@pytest.mark.parametrize("task", sorted(COUNTS))
def test_real_files_match_provenance(task):
    d = load_glue(task, GLUE / LAYOUTS[task].directory)
    train, dev = COUNTS[task]
    assert set(d) == ({"train", "validation"} if train else {"validation"})
    for split, expected in (("train", train), ("validation", dev)):
        if expected is None:
            continue
        rows, labels = expected
        assert len(d[split]) == rows
        if labels is not None:
            assert Counter(d[split]["label"]) == labels
        else:  # STS-B: float scores in [0, 5] that use the whole range
            scores = d[split]["label"]
            assert min(scores) == 0.0 and max(scores) == 5.0 and isinstance(scores[0], float)
        single = LAYOUTS[task].sentence2 is None
        assert all((s is None) == single for s in d[split]["sentence2"][:50])


@needs_data
def test_quirks_bom_no_header_quotes():
    mrpc = load_glue("mrpc", GLUE / "MRPC")["validation"][0]  # the BOM'd header was recognised
    assert mrpc["label"] == 1 and mrpc["sentence1"].startswith("He said the foodservice pie business")
    # An unbalanced double quote stays in the text (tab splitting only, no csv quoting).
    assert mrpc["sentence2"].startswith('" The foodservice pie business')
    cola = load_glue("cola", GLUE / "CoLA")["validation"][0]  # no header: the first line is data
    assert cola == {"id": "0", "sentence1": "The sailors rode the breeze clear of the rocks.", "sentence2": None,
                    "label": 1}
    sts = load_glue("stsb", GLUE / "STS-B")["validation"][1]
    assert sts == {"id": "1", "sentence1": "A young child is riding a horse.", "sentence2": "A child is riding a horse.",
                   "label": 4.75}


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"


@pytest.mark.parametrize("task, text, line, problem", [
    ("rte", RTE_HEADER + "0\ta\tb\tentailment\n1\ta\tb\n", 3, "expected 4 tab-separated columns"),
    ("rte", "index\tpremise\thypothesis\tlabel\n0\ta\tb\tentailment\n", 1, "header is"),
    ("rte", RTE_HEADER + "0\ta\tb\tcontradiction\n", 2, "label 'contradiction' is not one of"),
    ("sst2", "sentence\tlabel\nfine .\t1\nbad .\tx\n", 3, "label 'x' is not an integer"),
    ("sst2", "sentence\tlabel\nfine .\t2\n", 2, "label 2 is out of range 0..1"),
    ("cola", "src\t1\t\tok .\nsrc\t1\tok .\n", 2, "expected 4 tab-separated columns"),
    ("stsb", "\t".join(LAYOUTS["stsb"].header) + "\n" + "0\tg\tf\ty\t0\tn\tn\ta\tb\t5.5\n", 2, "outside [0.0, 5.0]"),
    ("stsb", "\t".join(LAYOUTS["stsb"].header) + "\n" + "0\tg\tf\ty\t0\tn\tn\ta\tb\thigh\n", 2, "is not a number"),
    ("sst2", b"sentence\tlabel\nfine .\t1\ncaf\xe9 .\t1\n", 3, "not valid UTF-8"),
    ("sst2", "sentence\tlabel\nfine .\t1\n\nok .\t0\n", 3, "expected 2 tab-separated columns"),
])
def test_malformed_rows_name_file_and_line(tmp_path, task, text, line, problem):
    path = _write(tmp_path / "train.tsv", text)
    with pytest.raises(AlbertError) as err:
        read_tsv(path, task)
    assert f"{path}:{line}:" in str(err.value)
    assert problem in str(err.value)


def test_dev_label_unseen_in_train(tmp_path):
    _write(tmp_path / "train.tsv", "sentence\tlabel\ngood .\t1\nnice .\t1\n")
    dev = _write(tmp_path / "dev.tsv", "sentence\tlabel\nfine .\t1\nbad .\t0\n")
    with pytest.raises(AlbertError) as err:
        load_glue("sst2", tmp_path)
    assert f"{dev}:3:" in str(err.value) and "'negative'" in str(err.value)


def test_missing_files_and_overrides(tmp_path):
    with pytest.raises(AlbertError, match="data directory not found"):
        load_glue("rte", tmp_path / "RTE")
    _write(tmp_path / "dev.tsv", RTE_HEADER + "0\ta\tb\tentailment\n")
    with pytest.raises(AlbertError, match=r"train\.tsv: data file not found"):
        load_glue("rte", tmp_path)
    # QNLI: train is optional (only dev exists here); an explicit train file is used when given.
    _write(tmp_path / "QNLI" / "dev.tsv", "index\tquestion\tsentence\tlabel\n0\tq?\ts.\tnot_entailment\n")
    assert set(load_glue("qnli", tmp_path / "QNLI")) == {"validation"}
    train = _write(tmp_path / "qnli_train.tsv", "index\tquestion\tsentence\tlabel\n5\tq?\ts.\tnot_entailment\n")
    d = load_glue("qnli", tmp_path / "QNLI", train_file=train)
    assert d["train"][0] == {"id": "5", "sentence1": "q?", "sentence2": "s.", "label": 1}
    with pytest.raises(AlbertError, match="unknown GLUE task"):
        load_glue("ax", tmp_path)


def test_hub_layout_is_converted():
    names = ["entailment", "not_entailment"]
    features = Features({"question": Value("string"), "sentence": Value("string"),
                         "label": ClassLabel(names=names), "idx": Value("int32")})
    hub = DatasetDict(
        train=Dataset.from_list([{"question": "q", "sentence": "s", "label": 1, "idx": 3}], features=features),
        test=Dataset.from_list([{"question": "q", "sentence": "s", "label": -1, "idx": 0}], features=features))
    out = from_hub_format(hub, "qnli")
    assert set(out) == {"train"}  # the unlabelled test split is dropped
    assert out["train"][0] == {"id": "3", "sentence1": "q", "sentence2": "s", "label": 1}


# ----- malformed, odd and random input

TSV_BAD = {
    "short row": ("sst2", "sentence\tlabel\na fine film\n", 2, "expected 2 tab-separated columns"),
    "long row": ("sst2", "sentence\tlabel\na fine\tfilm\t1\n", 2, "found 3"),
    "wrong header": ("sst2", "text\tlabel\na fine film\t1\n", 1, "header is ['text', 'label']"),
    "header missing": ("rte", "0\tA man.\tA person.\tentailment\n", 1, "header is"),
    "not UTF-8": ("sst2", "sentence\tlabel\ncaf\xe9 au lait\t1\n", 2, "not valid UTF-8 (byte 0xe9"),
    "label not a number": ("sst2", "sentence\tlabel\ngood\tpositive\n", 2, "label 'positive' is not an integer"),
    "label out of range": ("cola", "gj04\t7\t\tShe left.\n", 1, "label 7 is out of range"),
    "unknown label name": ("rte", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tneutral\n", 2, "label 'neutral'"),
    "score not finite": ("stsb", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
                                 "\tscore\n0\tg\tf\t2012\t1\ts\ts\tA.\tB.\tnan\n", 2, "outside [0.0, 5.0]"),
    "no data rows": ("sst2", "sentence\tlabel\n", None, "no data rows"),
}


@pytest.mark.parametrize("name", TSV_BAD)
def test_malformed_tsv_names_file_and_line(tmp_path, name):
    task, text, line, problem = TSV_BAD[name]
    path = tmp_path / "dev.tsv"
    path.write_bytes(text.encode("latin-1") if name == "not UTF-8" else text.encode())
    with pytest.raises(AlbertError) as e:
        read_tsv(path, task)
    one_line_error(e, f"{path}:{line}:" if line else f"{path}:", problem)


def test_bom_crlf_and_quotes_in_tsv_read(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes("\ufeffsentence\tlabel\r\nit 's \"a film\t1\r\n' bad\t0\r\n".encode())
    rows, lines = read_tsv(path, "sst2")
    assert [(r["sentence1"], r["label"]) for r in rows] == [("it 's \"a film", 1), ("' bad", 0)]
    assert lines == [2, 3]


_TSV_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r"), max_size=30)


@HYPOTHESIS
@given(rows=st.lists(st.tuples(_TSV_TEXT, _TSV_TEXT, st.sampled_from(["entailment", "not_entailment"])),
                     min_size=1, max_size=8), bom=st.booleans(), crlf=st.booleans())
def test_tsv_round_trip(tmp_path, rows, bom, crlf):
    end = "\r\n" if crlf else "\n"
    text = ("\ufeff" if bom else "") + "index\tsentence1\tsentence2\tlabel" + end
    text += "".join(f"{i}\t{a}\t{b}\t{label}{end}" for i, (a, b, label) in enumerate(rows))
    path = tmp_path / "dev.tsv"
    path.write_bytes(text.encode())
    got, lines = read_tsv(path, "rte")
    names = LAYOUTS["rte"].label_names
    assert [(r["id"], r["sentence1"], r["sentence2"], names[r["label"]]) for r in got] == \
           [(str(i), a, b, label) for i, (a, b, label) in enumerate(rows)]
    assert lines == list(range(2, len(rows) + 2))


@HYPOTHESIS
@given(blob=GARBAGE, task=st.sampled_from(sorted(LAYOUTS)))
def test_tsv_garbage_is_an_albert_error_or_parses(tmp_path, blob, task):
    path = tmp_path / "garbage.tsv"
    path.write_bytes(blob)
    try:
        rows, lines = read_tsv(path, task)
    except AlbertError as e:
        assert str(e).startswith(f"{path}") and "\n" not in str(e), str(e)
    else:
        assert len(rows) == len(lines) > 0


# ----- MNLI, QQP, WNLI (issue 33): small files in the official layouts, tests/fixtures/glue

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "glue"


def test_mnli_reads_both_dev_sets_into_one_validation_split():
    d = load_glue("mnli", FIXTURES / "MNLI")
    assert len(d["train"]) == 6 and len(d["validation"]) == 5
    assert d["validation"]["id"] == ["matched-0", "matched-1", "matched-2", "mismatched-0", "mismatched-1"]
    # gold_label, the last of the dev files' 16 columns (not label1, the first annotator's)
    assert d["validation"]["label"] == [0, 2, 1, 0, 2]
    assert d["train"][1] == {"id": "1", "sentence1": "I never liked the rain much.",
                             "sentence2": "I love rainy days.", "label": 2}
    only_matched = load_glue("mnli", FIXTURES / "MNLI", dev_file=FIXTURES / "MNLI" / "dev_matched.tsv")
    assert len(only_matched["validation"]) == 5  # the mismatched set still comes from the directory


def test_qqp_and_wnli_read():
    qqp = load_glue("qqp", FIXTURES / "QQP")
    assert qqp["train"][0] == {"id": "133273", "sentence1": "How is the life of a math student?",
                               "sentence2": "What is life like for a maths student?", "label": 1}
    assert qqp["validation"]["label"] == [1, 0, 1]
    wnli = load_glue("wnli", FIXTURES / "WNLI")
    assert len(wnli["train"]) == 4 and wnli["validation"]["label"] == [1, 0]
    assert LAYOUTS["wnli"].label_names[1] == "entailment"  # the hub's order: 1 is entailment


def _copy_with(tmp_path: Path, task_dir: str, name: str, line: int, edit) -> Path:
    """A copy of a fixture directory with line `line` (1-based) of file `name` replaced by edit(fields)."""
    import shutil

    target = tmp_path / task_dir
    shutil.copytree(FIXTURES / task_dir, target)
    lines = (target / name).read_text().splitlines()
    lines[line - 1] = "\t".join(edit(lines[line - 1].split("\t")))
    (target / name).write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.parametrize("task_dir, name, line, edit, problem", [
    ("MNLI", "dev_mismatched.tsv", 3, lambda f: f[:-1], "expected 16 tab-separated columns for MNLI, found 15"),
    ("MNLI", "train.tsv", 4, lambda f: f[:-1] + ["contradicts"], "label 'contradicts' is not one of entailment"),
    ("MNLI", "dev_matched.tsv", 1, lambda f: f[:-1], "header is"),
    ("QQP", "train.tsv", 2, lambda f: f[:-1] + ["2"], "label 2 is out of range 0..1"),
    ("QQP", "dev.tsv", 3, lambda f: f[:4], "expected 6 tab-separated columns for QQP, found 4"),
    ("WNLI", "dev.tsv", 2, lambda f: f[:-1] + ["entailment"], "label 'entailment' is not an integer"),
])
def test_issue33_glue_bad_rows_name_file_and_line(tmp_path, task_dir, name, line, edit, problem):
    directory = _copy_with(tmp_path, task_dir, name, line, edit)
    with pytest.raises(AlbertError) as err:
        load_glue(task_dir.lower(), directory)
    one_line_error(err, f"{directory / name}:{line}:", problem)


def test_mnli_hub_layout_has_both_dev_sets():
    features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                         "label": ClassLabel(names=["entailment", "neutral", "contradiction"]), "idx": Value("int32")})
    row = {"premise": "p", "hypothesis": "h", "label": 1, "idx": 0}
    hub = DatasetDict({split: Dataset.from_list([row], features=features) for split in
                       ("train", "validation_matched", "validation_mismatched", "test_matched")})
    d = from_hub_format(hub, "mnli")
    assert set(d) == {"train", "validation"} and d["validation"]["id"] == ["matched-0", "mismatched-0"]
    assert d["train"][0] == {"id": "0", "sentence1": "p", "sentence2": "h", "label": 1}
