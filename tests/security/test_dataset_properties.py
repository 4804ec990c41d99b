"""Property tests: any uploaded CSV / TSV / JSONL loads, or is refused listing its problems."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from propetl.data import DatasetValidationError, load_user_file, validate_user_file

FAST = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
SUFFIXES = (".csv", ".tsv", ".jsonl")
NASTY = [
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    '=HYPERLINK("http://x")',
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "null",
    "None",
    "",
    " ",
    '"',
    '""',
    "'",
    ",",
    "\t",
    "\r\n",
    "\n",
    "\x00",
    "\ufeff",
    "é",
    "🙂",
    "a" * 5000,
    "0",
    "1",
    "2.5",
    "true",
    "train",
    "dev",
    "test",
    "validation",
    "TRAIN",
]
COLUMNS = [
    "text",
    "label",
    "text_pair",
    "sentence",
    "sentence1",
    "sentence2",
    "split",
    "Label",
    "TEXT",
    "txt",
    "",
    "text ",
    "label",
]

cells = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=20),
    st.integers(-3, 3).map(str),
    st.floats(allow_nan=True).map(repr),
)
json_cells = st.one_of(
    cells,
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
headers = st.lists(st.sampled_from(COLUMNS), min_size=0, max_size=5)


@st.composite
def tables(draw, cell=cells):
    header = draw(headers)
    if draw(st.booleans()):  # mostly well-formed: a text and a label column
        header = [*dict.fromkeys(["text", "label", *header])]
    width = len(header)
    n = draw(st.integers(0, 40))
    few_labels = st.sampled_from(["a", "b", "c", "=cmd|' /C calc'!A0", "0", "1", "0.5"])
    rows = []
    for _ in range(n):
        row = {}
        for name in header:
            strategy = few_labels if name.lower() == "label" and draw(st.booleans()) else cell
            row[name] = draw(strategy)
        if draw(st.integers(0, 9)) == 0:  # ragged row
            extra = draw(st.integers(-min(width, 2), 2))
            row = dict(list(row.items())[: width + extra]) if extra < 0 else row
        rows.append(row)
    return header, rows


def _delimited(header, rows, delimiter) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    return out.getvalue()


@st.composite
def clean_tables(draw):
    """Tables that should mostly load: enough rows per class, awkward but valid cells."""
    pair = draw(st.booleans())
    header = ["text", "text_pair", "label"] if pair else ["text", "label"]
    labels = draw(
        st.sampled_from(
            [
                ("a", "b"),
                ("=cmd|' /C calc'!A0", "+1+1", "@x"),
                ("0", "1", "2"),
                ("0.5", "1.25", "-3"),
                ("é", "🙂"),
            ]
        )
    )
    texts = st.one_of(
        st.sampled_from(NASTY).filter(lambda t: t.strip("\x00\ufeff \r\n\t")),
        st.text(min_size=1, max_size=30).filter(str.strip),
    )
    n = draw(st.integers(10 * len(labels), 60))
    rows = [
        {"text": draw(texts), "text_pair": draw(texts), "label": labels[i % len(labels)]}
        for i in range(n)
    ]
    if draw(st.booleans()):
        header.append("split")
        for i, row in enumerate(rows):
            row["split"] = ("train", "dev", "test", "train", "valid")[(i // len(labels)) % 5]
    return header, rows


@st.composite
def files(draw):
    suffix = draw(st.sampled_from(SUFFIXES))
    kind = draw(
        st.sampled_from(["table", "table", "clean", "clean", "clean", "garbage", "mixed", "empty"])
    )
    if kind == "empty":
        return suffix, draw(st.sampled_from([b"", b"\n", b"\xef\xbb\xbf", b"  \n\n"]))
    if kind == "garbage":
        return suffix, draw(st.binary(max_size=300))
    if kind == "clean":
        header, rows = draw(clean_tables())
        if suffix == ".jsonl":
            text = "\n".join(json.dumps({h: r[h] for h in header}) for r in rows)
        else:
            text = _delimited(header, rows, "\t" if suffix == ".tsv" else ",")
        return suffix, text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig"])))
    if suffix == ".jsonl":
        header, rows = draw(tables(json_cells))
        lines = []
        for row in rows:
            if draw(st.integers(0, 12)) == 0:
                lines.append(draw(st.sampled_from(["[1, 2]", "{bad json", "42", '"x"'])))
            else:
                lines.append(json.dumps(row, allow_nan=True))
        text = "\n".join(lines)
    else:
        header, rows = draw(tables())
        text = _delimited(header, rows, "\t" if suffix == ".tsv" else ",")
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    if kind == "mixed":  # a few raw bytes spliced in
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return suffix, data


def _check(data: bytes, suffix: str, task_type: str = "auto", max_bytes: int = 50_000_000):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        problems = validate_user_file(path, task_type=task_type, max_bytes=max_bytes)
        assert isinstance(problems, list) and all(isinstance(p, str) and p for p in problems)
        try:
            task = load_user_file(path, task_type=task_type, max_bytes=max_bytes)
        except DatasetValidationError as err:
            assert problems, "load refused a file that validated clean"
            assert err.problems == problems and str(err).count("\n  - ") == len(problems)
            return None
        assert not problems, f"loaded despite problems: {problems}"
        return task


class TestUploadedDatasetProperties:
    """`validate_user_file` and `load_user_file` agree; only DatasetValidationError escapes."""

    @FAST
    @given(files(), st.sampled_from(["auto", "auto", "classification", "regression"]))
    def test_any_file_loads_or_lists_its_problems(self, file, task_type):
        suffix, data = file
        task = _check(data, suffix, task_type)
        event("loaded" if task is not None else "refused")
        if task is None:
            return
        info = task.info
        assert sum(len(s) for s in task.splits.values()) == sum(info.sizes.values())
        if info.label_names is not None:  # labels are plain strings, never evaluated
            assert all(isinstance(n, str) for n in info.label_names)
            for split in task.splits.values():
                assert all(0 <= y < len(info.label_names) for y in split["label"])
        else:
            for split in task.splits.values():
                assert all(math.isfinite(y) for y in split["label"])

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(SUFFIXES), st.binary(min_size=1, max_size=2000))
    def test_binary_garbage(self, suffix, data):
        _check(data, suffix)


class TestUploadedDatasetExamples:
    """The named bad-input classes, one by one."""

    def good(self, labels=("pos", "neg"), n=40) -> str:
        return "text,label\n" + "".join(
            f"example {i},{labels[i % len(labels)]}\n" for i in range(n)
        )

    @pytest.mark.parametrize("suffix", SUFFIXES)
    def test_empty(self, suffix):
        with pytest.raises(DatasetValidationError, match="empty"):
            _check_raise(b"", suffix)

    def test_oversized_is_refused_before_reading(self, tmp_path, monkeypatch):
        path = tmp_path / "big.csv"
        path.write_text(self.good())
        monkeypatch.setattr(Path, "read_bytes", _forbidden)
        problems = validate_user_file(path, max_bytes=100)
        assert problems and "above the" in problems[0]

    def test_huge_cell(self):
        data = (
            "text,label\n"
            + "".join(f"{'x' * 200_000 if i == 3 else 'hi'} {i},{i % 2}\n" for i in range(40))
        ).encode()
        assert _check(data, ".csv") is not None

    @pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
    def test_wrong_encoding_is_named(self, encoding):
        data = self.good(labels=("négatif", "positif")).encode(encoding)
        with pytest.raises(DatasetValidationError, match="not valid UTF-8"):
            _check_raise(data, ".csv")

    def test_formula_labels_stay_plain_strings(self):
        labels = ("=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0")
        task = _check(
            self.good(labels).replace("=cmd|' /C calc'!A0", "\"=cmd|' /C calc'!A0\"").encode(),
            ".csv",
        )
        assert task is not None and set(task.info.label_names) == set(labels)

    def test_nan_labels_are_missing_not_numbers(self):
        text = "text,label\n" + "".join(f"t {i},{'NaN' if i == 5 else i % 2}\n" for i in range(40))
        with pytest.raises(DatasetValidationError, match="label is missing in 1 row"):
            _check_raise(text.encode(), ".csv")

    def test_jsonl_non_finite_and_nested_labels(self):
        lines = [
            json.dumps({"text": f"t {i}", "label": [1] if i == 2 else i % 2}) for i in range(40)
        ] + ['{"text": "x", "label": Infinity}']
        _check("\n".join(lines).encode(), ".jsonl")  # loads or lists problems; no crash


def _forbidden(self, *args, **kwargs):
    raise AssertionError("an oversized file was read")


def _check_raise(data: bytes, suffix: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        return load_user_file(path)
