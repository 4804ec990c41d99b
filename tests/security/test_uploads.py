"""Upload hardening: size, garbage, encodings, formula labels, file names, links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

GOOD = "text,label\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(40))


def unique(tag: str) -> str:
    """A valid file whose content no other test uploads (the same content is reused)."""
    return GOOD + f"a row only {tag} has,a\n"


@pytest.fixture
def launch(stack):
    from app.ui import launch

    return launch


@pytest.fixture
def uploads(stack):
    """The uploads folder of the dashboard's user (login off: the default owner)."""
    from app.uploads import folder_for

    return folder_for("local")


def _send(launch, tmp_path: Path, name: str, content: bytes | str):
    """What Gradio hands the upload handler: a temp file keeping the client's file name."""
    folder = tmp_path / "gradio-tmp"
    folder.mkdir(exist_ok=True)
    path = folder / "f"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return launch.upload(str(path.rename(folder / name)), [])


def _outside(data_dir: Path, before: set[Path]) -> list[Path]:
    """Files that appeared under the test's temp root but outside the data dir."""
    root = data_dir.parent
    now = {p for p in root.rglob("*") if p.is_file()}
    return [p for p in now - before if data_dir not in p.parents]


class TestUploadRefusals:
    """Oversized, garbage and wrongly encoded uploads are refused and nothing is stored."""

    def test_oversized(self, launch, tmp_path, uploads, monkeypatch):
        import propetl.data.user_file as user_file

        monkeypatch.setattr(
            user_file.validate_user_file, "__kwdefaults__", {"task_type": "auto", "max_bytes": 1000}
        )
        message, _ = _send(launch, tmp_path, "big.csv", GOOD * 10)
        assert "above the" in message and "limit" in message
        assert not (uploads / "big.csv").exists()

    @pytest.mark.parametrize(
        ("name", "content", "why"),
        [
            ("garbage.csv", bytes(range(256)) * 4, "not valid UTF-8"),
            (
                "utf16.csv",
                GOOD.replace("text number", "numéro").encode("utf-16"),
                "not valid UTF-8",
            ),
            (
                "latin1.tsv",
                GOOD.replace(",", "\t").replace("number", "é").encode("latin-1"),
                "not valid UTF-8",
            ),
            ("model.bin", b"\x80\x04\x95" + b"\x00" * 64, "unsupported file type"),
            ("archive.zip", b"PK\x03\x04" + b"\x00" * 64, "unsupported file type"),
            ("empty.jsonl", b"", "empty"),
        ],
    )
    def test_refused_with_a_reason(self, launch, tmp_path, uploads, name, content, why):
        message, _ = _send(launch, tmp_path, name, content)
        assert message.startswith(f"**✗ {name}") and why in message, message
        assert not (uploads / name).exists()

    def test_the_dashboard_caps_upload_size(self, stack):
        from app.server import create_app
        from propetl.data.user_file import DEFAULT_MAX_BYTES

        app = create_app()
        blocks = next(
            r.app.blocks for r in app.routes if hasattr(getattr(r, "app", None), "blocks")
        )
        assert blocks.max_file_size == DEFAULT_MAX_BYTES

    def test_an_oversized_stream_is_read_no_further_than_the_limit(self, tmp_path, monkeypatch):
        from app import uploads

        class Endless:
            read_bytes = 0

            def read(self, n: int) -> bytes:
                self.read_bytes += n
                return b"x" * n

        monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 3_000_000)
        stream = Endless()
        with pytest.raises(uploads.UploadTooLarge, match="3 MB"):
            uploads.copy_capped(stream, tmp_path / "big.csv")  # type: ignore[arg-type]
        assert stream.read_bytes <= 3_000_000 + (1 << 20)
        assert not (tmp_path / "big.csv").exists()


class TestUploadNames:
    """File names are sanitised: nothing is written outside `<data>/uploads`."""

    @pytest.mark.parametrize(
        ("name", "safe"),
        [
            ("../../etc/x.csv", "x.csv"),
            ("..\\..\\windows\\x.csv", "x.csv"),
            ("/etc/passwd.csv", "passwd.csv"),
            (".hidden.csv", "hidden.csv"),
            ("..csv", "upload.csv"),
            ("a b;rm -rf $(x).CSV", "a_b_rm_-rf_x.csv"),
            ("=cmd|' calc'!A0.tsv", "cmd_calc_A0.tsv"),
            ("ünïcödé.jsonl", "n_c_d.jsonl"),
            ("x" * 300 + ".csv", "x" * 100 + ".csv"),
        ],
    )
    def test_safe_upload_name(self, launch, name, safe):
        assert launch.safe_upload_name(name) == safe

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.text(max_size=60), st.sampled_from([".csv", ".tsv", ".jsonl"]))
    def test_any_name_stays_in_the_folder(self, name, suffix):
        from app.ui.launch import safe_upload_name

        assume(Path((name + suffix).replace("\\", "/")).suffix == suffix)  # else refused first
        safe = safe_upload_name(name + suffix)
        folder = Path("/data/uploads")
        assert (folder / safe).resolve().parent == folder
        assert not safe.startswith(".") and "/" not in safe and "\\" not in safe
        assert Path(safe).stem and Path(safe).suffix == suffix

    def test_traversal_name_is_stored_inside(self, launch, stack, uploads, tmp_path):
        before = {p for p in stack.data_dir.parent.rglob("*") if p.is_file()}
        source = tmp_path / "src.csv"
        source.write_text(unique("evil"))
        target = launch.store_in(uploads, source.rename(tmp_path / "..evil.csv"))
        assert target.parent == uploads and target.name == "evil.csv"
        assert _outside(stack.data_dir, before) == []

    def test_a_link_in_the_folder_is_replaced_not_followed(self, launch, uploads, tmp_path):
        outside = tmp_path / "victim.txt"
        outside.write_text("keep me")
        uploads.mkdir(parents=True, exist_ok=True)
        (uploads / "linked.csv").symlink_to(outside)
        source = tmp_path / "linked.csv"
        source.write_text(unique("linked"))
        message, _ = launch.upload(str(source), [])
        assert "ready as task `linked`" in message
        assert outside.read_text() == "keep me"
        assert not (uploads / "linked.csv").is_symlink()

    def test_same_name_never_overwrites_another_upload(self, launch, uploads, tmp_path):
        first, second = tmp_path / "a", tmp_path / "b"
        first.mkdir()
        second.mkdir()
        content = unique("shared")
        (first / "shared.csv").write_text(content)
        (second / "shared.csv").write_text(content.replace("text number", "other text"))
        _, one = launch.upload(str(first / "shared.csv"), [])
        _, two = launch.upload(str(second / "shared.csv"), [])
        _, again = launch.upload(str(first / "shared.csv"), [])
        paths = [uploads / u["value"][-1] for u in (one, two, again)]  # upload names
        assert paths[0].name == "shared.csv" and paths[1].name == "shared-2.csv"
        assert paths[2] == paths[0]  # the same bytes again: the same task
        assert paths[0].read_text() == content
        assert not list(uploads.glob("*.part"))

    def test_same_content_under_another_name_reuses_the_upload(self, launch, uploads, tmp_path):
        (tmp_path / "first.csv").write_text(unique("reused"))
        (tmp_path / "renamed.csv").write_text(unique("reused"))
        _, one = launch.upload(str(tmp_path / "first.csv"), [])
        message, two = launch.upload(str(tmp_path / "renamed.csv"), [])
        assert one["value"][-1] == two["value"][-1] == "first.csv"
        assert "same content as first.csv" in message
        assert not (uploads / "renamed.csv").exists()

    def test_the_picker_lists_the_upload_and_leaves_the_pick_alone(self, launch, tmp_path):
        """Opening the task picker refreshes its list; a pick made before that answer
        arrives must not be overwritten, so the answer carries choices only."""
        (tmp_path / "listed.csv").write_text(unique("listed"))
        launch.upload(str(tmp_path / "listed.csv"), [])
        update = launch.fresh_task_choices()
        assert ("listed (uploaded csv)", "listed.csv") in update["choices"]
        assert "value" not in update


class TestFormulaLabels:
    """Spreadsheet formulas in labels are kept as plain strings, never evaluated."""

    def test_formula_labels(self, launch, tmp_path, uploads):
        labels = ("=cmd|' /C calc'!A0", "@SUM(1+1)")
        text = "text,label\n" + "".join(f'row {i},"{labels[i % 2]}"\n' for i in range(40))
        message, update = _send(launch, tmp_path, "formulas.csv", text)
        assert "ready" in message
        from propetl.data import load_user_file

        info = load_user_file(uploads / update["value"][-1]).info
        assert set(info.label_names) == set(labels)

    def test_every_csv_is_written_through_the_defusing_writer(self):
        """Tables go back out as CSV only through propetl/csvout.py, which defuses formulas."""
        repo = Path(__file__).resolve().parents[2]
        sources = [p for d in ("app", "propetl", "worker") for p in (repo / d).rglob("*.py")]
        assert sources
        for path in sources:
            if path.name == "csvout.py":
                continue
            text = path.read_text()
            for needle in (".to_csv(", "csv.writer", "DictWriter", ".to_excel("):
                assert needle not in text, f"{path} writes CSV: use propetl.csvout"

    def test_labelled_file_defuses_formula_texts(self, tmp_path):
        """A text that starts a formula comes back from a labelling run with an apostrophe."""
        import csv

        from propetl.labelling import label_file

        class Echo:
            tasks = ("t",)

            def predict_mixed(self, items):
                return [{"label": "=cmd", "scores": {"=cmd": 1.0}} for _ in items]

        source = tmp_path / "in.csv"
        source.write_text('text\n"=1+2"\n@x\nplain\n')
        dest = tmp_path / "out.csv"
        label_file(Echo(), source, dest, task="t")
        rows = list(csv.DictReader(dest.open(newline="")))
        assert [r["text"] for r in rows] == ["'=1+2", "'@x", "plain"]
        assert {r["label"] for r in rows} == {"'=cmd"}


class TestNoArchives:
    """No archive is ever unpacked from user input (so there is no zip bomb to defuse)."""

    def test_no_extraction_anywhere(self):
        repo = Path(__file__).resolve().parents[2]
        for d in ("app", "propetl", "worker"):
            for path in (repo / d).rglob("*.py"):
                text = path.read_text()
                for needle in (
                    "extractall",
                    "unpack_archive",
                    "tarfile",
                    "ZipFile(",
                    "gzip.open",
                    "zipfile.ZipFile(path",
                ):
                    if needle == "ZipFile(" and path.name == "bundles.py":
                        assert '"w"' in text  # writes download bundles only
                        continue
                    assert needle not in text, f"{path}: {needle}"
        assert os.sep  # keeps the import used on every platform
