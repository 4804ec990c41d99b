"""User files: every problem is reported with a precise message; valid files load."""

from __future__ import annotations

import json

import pytest

from propetl.data import DatasetValidationError, load_user_file, validate_user_file


def _csv(rows: list[tuple[object, ...]], header: str = "text,label") -> str:
    return header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)


def _balanced(n: int = 40, labels: str = "ab") -> list[tuple[str, str]]:
    return [(f"example number {i}", labels[i % len(labels)]) for i in range(n)]


def _split_rows(cycle: list[str]) -> list[tuple[str, str, str]]:
    """30 balanced rows whose split column cycles through `cycle`."""
    return [(t, y, cycle[i % len(cycle)]) for i, (t, y) in enumerate(_balanced(30))]


def _problems(path, **kwargs) -> list[str]:
    problems = validate_user_file(path, **kwargs)
    with pytest.raises(DatasetValidationError) as err:
        load_user_file(path, **kwargs)
    assert err.value.problems == problems
    for p in problems:
        assert p in str(err.value)
    return problems


def _one(path, *fragments: str, **kwargs) -> str:
    problems = _problems(path, **kwargs)
    assert len(problems) == 1, problems
    for fragment in fragments:
        assert fragment in problems[0], problems[0]
    return problems[0]


# --- files that cannot be read -------------------------------------------------------------


def test_missing_file(tmp_path) -> None:
    _one(tmp_path / "nope.csv", "file not found", "nope.csv")


def test_unsupported_extension(write) -> None:
    _one(write("data.xlsx", "x"), "unsupported file type '.xlsx'", ".csv, .tsv, .jsonl")


def test_oversized_file(write) -> None:
    path = write("big.csv", _csv(_balanced(200)))
    _one(path, "above the 0.0 MB limit", max_bytes=1000)


def test_empty_file_and_header_only(write) -> None:
    _one(write("empty.csv", ""), "the file is empty")
    _one(write("header.csv", "text,label\n"), "no data rows")
    _one(write("blank.jsonl", "\n\n"), "no data rows")


def test_bad_encoding_suggests_utf8(write) -> None:
    content = _csv(_balanced()).replace("example number 3", "café number 3")
    message = _one(write("latin.csv", content.encode("latin-1")), "not valid UTF-8", "UTF-8")
    assert "line 5" in message and "0xe9" in message


def test_utf8_bom_is_accepted(write) -> None:
    path = write("bom.csv", "\ufeff" + _csv(_balanced()))
    assert validate_user_file(path) == []


def test_csv_rows_with_wrong_field_count(write) -> None:
    content = _csv(_balanced()) + "a text, with a comma,a\n"
    _one(write("bad.csv", content), "3 field(s) but the header has 2", "line 42")


def test_jsonl_bad_lines_give_line_numbers(write) -> None:
    lines = [json.dumps({"text": t, "label": y}) for t, y in _balanced()]
    lines[2] = '{"text": "oops", "label": }'
    lines[5] = "[1, 2]"
    problems = _problems(write("bad.jsonl", "\n".join(lines)))
    assert any(p.startswith("line 3 is not valid JSON") for p in problems), problems
    assert any("not objects" in p and "line 6" in p for p in problems), problems


# --- columns -------------------------------------------------------------------------------


def test_misnamed_text_column_suggests_closest(write) -> None:
    message = _one(write("cols.csv", _csv(_balanced(), header="txt,label")), "no text column")
    assert "found columns: 'txt', 'label'" in message and "did you mean 'txt'" in message


def test_missing_label_column_suggests_closest(write) -> None:
    _one(
        write("cols.csv", _csv(_balanced(), header="text,labels")),
        "no 'label' column",
        "did you mean 'labels'",
    )


def test_half_a_pair_is_reported(write) -> None:
    rows = [(t, y) for t, y in _balanced()]
    _one(write("pair.csv", _csv(rows, header="sentence1,label")), "'sentence1' needs its partner")


# --- cells ---------------------------------------------------------------------------------


def test_empty_text_cells_counted_with_lines(write) -> None:
    rows = _balanced()
    rows[0] = ("", "a")
    rows[4] = ("  ", "a")
    _one(write("empty_text.csv", _csv(rows)), "column 'text' is empty in 2 row(s)", "lines 2, 6")


def test_missing_targets(write) -> None:
    rows = _balanced()
    rows[1] = ("some text", "")
    rows[7] = ("more text", "NaN")
    _one(write("nan.csv", _csv(rows)), "label is missing in 2 row(s)", "lines 3, 9")


def test_regression_requested_with_text_labels(write) -> None:
    rows = [(f"t{i}", i / 3) for i in range(20)] + [("x", "high")]
    _one(write("reg.csv", _csv(rows)), "not numbers: 'high'", task_type="regression")


# --- classes and splits --------------------------------------------------------------------


def test_only_one_class(write) -> None:
    _one(write("one.csv", _csv(_balanced(30, "a"))), "only one class ('a')")


def test_rare_class_without_split_column(write) -> None:
    rows = [*_balanced(40), ("rare text", "c"), ("another rare", "c")]
    _one(write("rare.csv", _csv(rows)), "class 'c' has only 2 example(s)", "at least 10")


def test_singleton_class_with_split_column(write) -> None:
    rows = _split_rows(["train", "dev", "test"])
    rows.append(("lonely", "c", "train"))
    _one(
        write("split.csv", _csv(rows, header="text,label,split")),
        "class 'c' has only 1 example(s) in train",
    )


def test_labels_in_dev_test_absent_from_train(write) -> None:
    rows = _split_rows(["train", "train", "dev"])
    rows += [("new kind", "z", "test"), ("new kind 2", "z", "dev")]
    _one(
        write("unseen.csv", _csv(rows, header="text,label,split")),
        "label 'z' appears in dev/test (1 in test, 1 in dev)",
        "never in train",
    )


def test_bad_split_values(write) -> None:
    rows = _split_rows(["train", "dev", "test"])
    rows[3] = (rows[3][0], rows[3][1], "holdout")
    _one(write("split.csv", _csv(rows, header="text,label,split")), "'holdout'", "line 5")


def test_split_without_dev_rows(write) -> None:
    rows = _split_rows(["train", "test", "train"])
    _one(write("split.csv", _csv(rows, header="text,label,split")), "split 'dev' has no rows")


def test_many_problems_reported_together(write) -> None:
    rows = _split_rows(["train", "dev", "test"])
    rows[0] = ("", "a", "train")
    rows[1] = ("no label", "", "dev")
    rows[2] = ("odd split", "b", "later")
    content = _csv(rows, header="text,label,split") + "too,many,fields,here\n"
    problems = _problems(write("messy.csv", content))
    joined = "\n".join(problems)
    assert len(problems) == 4, problems
    for fragment in ("4 field(s)", "'text' is empty", "label is missing", "'later'"):
        assert fragment in joined


# --- files that load -----------------------------------------------------------------------


def test_valid_csv_loads_with_stratified_split(write) -> None:
    data = load_user_file(write("ok.csv", _csv(_balanced(100, "xyz"))), name="mine")
    assert data.info.name == "mine" and data.info.label_names == ("x", "y", "z")
    assert data.sizes() == {"train": 80, "dev": 10, "test": 10}
    assert data.splits["train"].column_names == ["text", "label"]
    assert data.info.metrics == ("accuracy", "macro_f1")
    again = load_user_file(write("ok.csv", _csv(_balanced(100, "xyz"))), name="mine")
    assert again.splits["test"]["text"] == data.splits["test"]["text"]


def test_valid_tsv_with_split_column(write) -> None:
    rows = _split_rows(["train", "validation", "test"])
    content = "sentence\tlabel\tsplit\n" + "".join("\t".join(r) + "\n" for r in rows)
    data = load_user_file(write("ok.tsv", content))
    assert data.sizes() == {"train": 10, "dev": 10, "test": 10}
    assert data.info.text_columns == ("sentence",)


def test_valid_jsonl_with_integer_labels(write) -> None:
    lines = [json.dumps({"text": f"t {i}", "label": i % 3}) for i in range(60)]
    data = load_user_file(write("ok.jsonl", "\n".join(lines) + "\n"))
    assert data.info.label_names == ("0", "1", "2")
    assert set(data.splits["train"]["label"]) == {0, 1, 2}


def test_pair_task_loads(write) -> None:
    rows = [(f"first {i}", f"second {i}", "same" if i % 2 else "diff") for i in range(40)]
    data = load_user_file(write("pair.csv", _csv(rows, header="sentence1,sentence2,label")))
    assert data.info.is_pair and data.info.text_columns == ("sentence1", "sentence2")
    assert data.splits["dev"].column_names == ["text", "text_pair", "label"]


def test_regression_auto_and_forced(write) -> None:
    rows = [(f"t {i}", i / 4) for i in range(40)]
    data = load_user_file(write("reg.csv", _csv(rows)))
    assert data.info.is_regression and data.info.main_metric == "combined"
    assert isinstance(data.splits["train"]["label"][0], float)
    ints = [(f"t {i}", i % 5) for i in range(50)]
    forced = load_user_file(write("reg2.csv", _csv(ints)), task_type="regression")
    assert forced.info.is_regression
    assert not load_user_file(write("cls.csv", _csv(ints))).info.is_regression


def test_formula_like_labels_stay_plain_strings(write) -> None:
    labels = ["=1+1", "+1", "-2", "@SUM(A1)"]
    rows = [(f"t {i}", labels[i % 4]) for i in range(80)]
    data = load_user_file(write("inject.csv", _csv(rows)))
    assert data.info.label_names == tuple(sorted(labels))
