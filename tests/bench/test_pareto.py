"""The pareto part on a tiny backbone: one JSON per run, resumed run by run; rows, tests, plot."""

import json
from dataclasses import replace

import pytest

from bench import pareto


@pytest.fixture(scope="module")
def first_sitting(tmp_path_factory):
    out = tmp_path_factory.mktemp("pareto")
    settings = replace(
        pareto.ParetoSettings.smoke_settings(out),
        steps=1,
        seeds=(1, 2),
        methods=("peft_lora_r1", "propetl_added_adapter_b16_k0.5", "propetl_adapter_b16_k0.5"),
    )
    return settings, pareto.run(settings)


def test_rows_have_the_issues_fields_and_count_only_what_a_task_adds(first_sitting):
    settings, _ = first_sitting
    rows = {r["method"]: r for r in json.loads((settings.out / "pareto.json").read_text())}
    assert set(rows) == {
        "peft_lora_r1",
        "propetl_added_adapter_b16_k0.5",
        "propetl_adapter_b16_k0.5",
    }
    for r in rows.values():
        assert {
            "method",
            "settings",
            "task",
            "marginal",
            "bytes_per_task",
            "params_per_task",
            "lr",
            "seeds",
            "acc_mean",
            "acc_se",
        } <= set(r)
        assert r["seeds"] == [1, 2] and r["acc_se"] is not None and 0 <= r["acc_mean"] <= 1
    added = rows["propetl_added_adapter_b16_k0.5"]
    assert added["marginal"] and not rows["peft_lora_r1"]["marginal"]
    run = json.loads(
        pareto.run_path(
            settings,
            "rotten_tomatoes",
            pareto.METHODS_BY_NAME["propetl_added_adapter_b16_k0.5"],
            added["lr"],
            1,
        ).read_text()
    )
    assert set(run["files"]) == {
        f"tasks/rotten_tomatoes/{f}" for f in ("masks.safetensors", "head.safetensors", "task.json")
    }
    assert run["prototype_files_unchanged"] is True
    assert run["test_acc"] == pytest.approx(run["test_acc_engine"])  # the saved files agree
    assert run["adapter_placement"] == "pfeiffer"
    # 2 layers x (16x32 + 32x16) mask bits / 32 = the paper's fp32 equivalents
    assert added["params_per_task"] == pytest.approx(2 * 2 * 16 * 32 / 32)
    assert len(run["test_pred"]) == 24 and run["data_seed"] == pareto.DATA_SEED
    peft_run = json.loads(
        pareto.run_path(
            settings,
            "rotten_tomatoes",
            pareto.METHODS_BY_NAME["peft_lora_r1"],
            rows["peft_lora_r1"]["lr"],
            2,
        ).read_text()
    )
    assert set(peft_run["files"]) == set(pareto.PEFT_FILES)
    assert (settings.out / "pareto.png").stat().st_size > 5_000
    stats = json.loads((settings.out / "pareto_stats.json").read_text())
    assert stats["pending"] == [] and stats["front"]["rotten_tomatoes"]
    # the trimmed grid (one rate) leaves the whole grid's other rates named, not forgotten
    lora_r1 = pareto.METHODS_BY_NAME["peft_lora_r1"]
    assert stats["untried_rates"]["rotten_tomatoes/peft_lora_r1"] == list(lora_r1.lrs[1:])
    assert rows["peft_lora_r1"]["dev_acc_by_lr"].keys() == {f"{lora_r1.lrs[0]:g}"}


def test_a_single_task_row_counts_the_prototype_it_needs(first_sitting):
    from propetl.checkpoint import CONFIG_FILE, PROTOTYPE_FILE

    settings, _ = first_sitting
    rows = {r["method"]: r for r in json.loads((settings.out / "pareto.json").read_text())}
    single, added = rows["propetl_adapter_b16_k0.5"], rows["propetl_added_adapter_b16_k0.5"]
    assert not single["marginal"]
    run = json.loads(
        pareto.run_path(
            settings,
            "rotten_tomatoes",
            pareto.METHODS_BY_NAME["propetl_adapter_b16_k0.5"],
            single["lr"],
            1,
        ).read_text()
    )
    assert {CONFIG_FILE, PROTOTYPE_FILE, "tasks/rotten_tomatoes/masks.safetensors"} <= set(
        run["files"]
    )
    assert run["bytes_per_task"] == sum(run["files"].values())
    assert run["files"][PROTOTYPE_FILE] > run["files"]["tasks/rotten_tomatoes/masks.safetensors"]
    assert single["bytes_per_task"] > added["bytes_per_task"] + run["files"][PROTOTYPE_FILE] // 2
    # the prototype's parameters count in full (one 32 -> 16 -> 32 adapter, shared by the
    # layers), the masks as bits / 32
    assert single["params_per_task"] - added["params_per_task"] >= 2 * 16 * 32
    assert run["prototype_files_unchanged"] is None


def test_a_second_sitting_trains_nothing_already_saved(first_sitting, monkeypatch):
    settings, result = first_sitting

    def refuse(*args, **kwargs):
        raise AssertionError("a saved run was trained again")

    monkeypatch.setattr(pareto, "run_peft", refuse)
    monkeypatch.setattr(pareto, "run_propetl", refuse)
    again = pareto.run(settings)
    assert [r["acc_mean"] for r in again["rows"]] == [r["acc_mean"] for r in result["rows"]]


def test_a_past_deadline_starts_no_run_and_lists_what_remains(first_sitting, tmp_path):
    settings, _ = first_sitting
    late = replace(settings, out=tmp_path, deadline=0.0)
    result = pareto.run(late)
    assert result["rows"] == []
    assert len(result["stats"]["pending"]) == 3


def test_mcnemar_is_exact_and_two_sided():
    assert pareto.mcnemar_p(0, 0) == 1.0
    assert pareto.mcnemar_p(5, 5) == 1.0
    assert pareto.mcnemar_p(0, 6) == pytest.approx(2 / 64)
    assert pareto.mcnemar_p(10, 2) == pytest.approx(pareto.mcnemar_p(2, 10))


def test_the_front_keeps_rows_nothing_beats_on_both_axes():
    rows = [
        {"bytes_per_task": b, "acc_mean": a, "method": m}
        for m, b, a in [("small", 10, 0.7), ("big", 100, 0.8), ("worse", 50, 0.65)]
    ]
    assert [r["method"] for r in pareto.front(rows)] == ["small", "big"]


def test_the_report_section_lists_every_row_and_says_where_propetl_stands(first_sitting):
    from bench.report_pareto import pareto_lines

    _, result = first_sitting
    text = "\n".join(pareto_lines(result["rows"], result["stats"]))
    for r in result["rows"]:
        assert f"| {r['method']} |" in text
    assert "Where ProPETL stands" in text and "`propetl_added_adapter_b16_k0.5`" in text
    assert "Every selected run is done." in text
    assert "**Grids not complete**" in text and "rotten_tomatoes/peft_lora_r1 0.01" in text
    row = next(r for r in result["rows"] if r["method"] == "peft_lora_r1")
    dev = 100 * row["dev_acc_by_lr"]["0.004"]
    assert f"| 0.004: {dev:.1f} | 0.004 |" in text  # the rates tried, with their dev accuracy


def test_the_section_replaces_its_earlier_text_and_keeps_the_rest(tmp_path):
    from bench.report_pareto import HEADING, replace_section

    doc = tmp_path / "B.md"
    doc.write_text("# B\n\n## A\n\na\n\n## How to read these figures\n\nz\n")
    replace_section(doc, [HEADING, "", "first", ""])
    replace_section(doc, [HEADING, "", "second", ""])
    text = doc.read_text()
    assert "first" not in text and text.count(HEADING) == 1
    assert text.index("## A") < text.index("second") < text.index("## How to read")


def _row(method, family, size, acc, se=None, marginal=False, n=1000):
    return {
        "method": method,
        "family": family,
        "task": "t",
        "bytes_per_task": size,
        "acc_mean": acc,
        "acc_se": se,
        "marginal": marginal,
        "test_examples": n,
    }


def test_a_one_seed_row_carries_the_binomial_standard_error():
    assert pareto.row_se(_row("a", "PEFT", 1, 0.8, se=0.004)) == 0.004
    assert pareto.row_se(_row("a", "PEFT", 1, 0.8, n=1600)) == pytest.approx(0.01)


def test_the_targets_say_which_added_rows_are_on_the_front_and_how_they_compare():
    added = _row("added", "ProPETL (added task)", 40_000, 0.77, se=0.005, marginal=True)
    slim = _row("slim", "ProPETL (added task)", 20_000, 0.70, se=0.005, marginal=True)
    rows = [
        added,
        slim,
        _row("r1", "PEFT", 44_000, 0.76, se=0.005),
        _row("tiny", "PEFT", 10_000, 0.75, se=0.005),
        _row("peft_lora_r32", "PEFT", 1_200_000, 0.775, se=0.005),
    ]
    t = pareto.targets(rows, "t")
    assert t["on_front"] == ["added"] and t["beaten"] == {"slim": ["tiny"]}
    assert t["best_small_added"] == "added" and t["best_small_peft"] == "r1"
    assert t["vs_small_peft"]["met"] and t["vs_small_peft"]["diff"] == pytest.approx(0.01)
    assert t["vs_lora_r32"]["met"]  # 0.5 points behind: within one
    rows[-1] = _row("peft_lora_r32", "PEFT", 1_200_000, 0.79, se=0.005)
    assert not pareto.targets(rows, "t")["vs_lora_r32"]["met"]
    # of several added variants, the one best on dev stands for ProPETL, not the test's best
    lucky = {
        **_row("lucky", "ProPETL (added task)", 40_000, 0.80, se=0.005, marginal=True),
        "dev_mean": 0.70,
    }
    chosen = pareto.targets([{**added, "dev_mean": 0.78}, lucky, *rows[2:]], "t")
    assert chosen["best_small_added"] == "added"

    from bench.report_pareto import target_lines

    text = "\n".join(target_lines(pareto.targets(rows, "t")))
    assert "not by `slim` (beaten by tiny)" in text and "met (higher or equal mean)" in text
    assert "LoRA r32*: `added` -2.00 points" in text and text.rstrip().endswith("not met.")


def test_a_trimmed_grid_still_chooses_among_rates_already_run(tmp_path):
    method = pareto.METHODS_BY_NAME["peft_vera_r256"]
    settings = pareto.ParetoSettings(out=tmp_path, grid=1, seeds=(1,))
    for lr, dev in ((method.lrs[0], 0.6), (method.lrs[1], 0.8)):
        path = pareto.run_path(settings, "rotten_tomatoes", method, lr, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"lr": lr, "seed": 1, "dev_acc": dev}))

    def no_training():
        raise AssertionError("every run is saved: nothing may train")

    result = pareto.method_runs(method, "rotten_tomatoes", no_training, settings)
    assert result["lr"] == method.lrs[1] and len(result["grid"]) == 2
    one_rate = pareto.method_runs(
        method,
        "rotten_tomatoes",
        no_training,
        replace(settings, out=tmp_path / "empty", deadline=0.0),
    )
    assert one_rate["lr"] is None and one_rate["grid"] == {}


def test_recipe_comparisons_are_paired_even_when_far_apart():
    module = {"petl": "adapter", "bottleneck": 64, "keep": 0.5}
    rows = [
        {
            **_row(name, "ProPETL (single task)", 240_000, acc, se=0.001),
            "settings": {**module, **extra},
        }
        for name, acc, extra in [
            ("slow", 0.60, {"mask_lr": 3e-3}),
            ("fast", 0.80, {"mask_lr": 3e-2}),
            ("other", 0.70, {**module, "keep": 0.1, "mask_lr": 3e-2}),
        ]
    ]
    assert pareto.recipe_pair(rows[0], rows[1]) and not pareto.recipe_pair(rows[1], rows[2])
    # added tasks alike but for how their prototype trained: a recipe comparison too
    longer = {**rows[1], "prototype": {"steps": 400}}
    assert pareto.recipe_pair(rows[1], longer) and not pareto.recipe_pair(rows[1], {**rows[1]})
    labels = [1, 0] * 5
    runs_of = {
        ("t", "slow"): [{"seed": 1, "test_pred": [1] * 10}],  # right on half
        ("t", "fast"): [{"seed": 1, "test_pred": labels}],  # right on all
        ("t", "other"): [{"seed": 1, "test_pred": labels}],
    }
    paired = pareto.paired_tests(rows, runs_of, {"t": labels})
    assert [(p["a"], p["b"]) for p in paired] == [("slow", "fast")]  # 20 points: not "close"
    assert paired[0]["recipe"] and paired[0]["only_b_right"] == 5 and paired[0]["only_a_right"] == 0
    assert paired[0]["mcnemar_p"] == pytest.approx(pareto.mcnemar_p(0, 5))


def test_an_added_row_may_name_how_its_prototype_trains(tmp_path, monkeypatch):
    import propetl.training

    trained = []
    real_train = propetl.training.train

    def recording_train(config, *args, **kwargs):
        trained.append(config)
        return real_train(config, *args, **kwargs)

    monkeypatch.setattr(propetl.training, "train", recording_train)
    settings = pareto.ParetoSettings.smoke_settings(tmp_path)
    method = replace(
        pareto.METHODS_BY_NAME["propetl_added_adapter_b16_k0.5"],
        name="propetl_added_b16_p3",
        prototype={"steps": 3, "lr": 0.02, "mask_lr": 0.05, "max_examples": 12},
    )
    model = pareto.prototype_folder(method, "rotten_tomatoes", settings)
    assert (model / "propetl_config.json").is_file() and model.parent.name == "propetl_b16_p3"
    (config,) = trained
    assert (config.max_steps, config.lr, config.mask_lr, config.max_examples) == (3, 0.02, 0.05, 12)
    assert "rotten_tomatoes" not in config.tasks  # the added task's texts are never seen
    assert pareto.prototype_folder(method, "rotten_tomatoes", settings) == model
    assert len(trained) == 1  # kept, not trained again
    odd = replace(method, name="propetl_added_odd", prototype={"epochs": 2})
    with pytest.raises(ValueError, match=r"unknown prototype option\(s\) \['epochs'\]"):
        pareto.prototype_folder(odd, "rotten_tomatoes", settings)


def test_a_hand_written_reading_survives_a_rebuild_of_its_section(
    first_sitting, tmp_path, monkeypatch
):
    from bench import common
    from bench.report_pareto import HEADING, pareto_lines, replace_section

    _, result = first_sitting
    monkeypatch.setattr(common, "READINGS", tmp_path / "readings")
    doc = tmp_path / "B.md"
    replace_section(doc, pareto_lines(result["rows"], result["stats"]))
    assert "Reading of 7 Dec" not in doc.read_text()
    (tmp_path / "readings").mkdir()
    (tmp_path / "readings" / "pareto.md").write_text("Reading of 7 Dec: the rows say so.\n")
    for _ in range(2):  # rebuilt twice: placed once, inside the section, before the plot
        replace_section(doc, pareto_lines(result["rows"], result["stats"]))
    text = doc.read_text()
    assert text.count("Reading of 7 Dec: the rows say so.") == 1
    assert text.index(HEADING) < text.index("Reading of 7 Dec") < text.index("![pareto]")


def test_a_row_chosen_at_its_grids_largest_rate_is_named(tmp_path):
    from bench.report_pareto import pareto_lines

    settings = replace(
        pareto.ParetoSettings.smoke_settings(tmp_path),
        steps=1,
        seeds=(1,),
        methods=("head_only",),
        grid=None,
    )
    head = pareto.METHODS_BY_NAME["head_only"]
    for lr in head.lrs:  # saved runs whose dev accuracy grows with the rate
        record = {
            "method": head.name,
            "lr": lr,
            "seed": 1,
            "dev_acc": lr,
            "test_acc": 0.5,
            "test_pred": [0] * 24,
            "bytes_per_task": 10,
            "params_per_task": 0,
            "head_params": 2,
            "train_seconds": 1.0,
        }
        pareto.write_json(pareto.run_path(settings, "rotten_tomatoes", head, lr, 1), record)
    result = pareto.run(settings)
    assert result["rows"][0]["lr"] == max(head.lrs)
    assert result["stats"]["top_of_grid"] == ["rotten_tomatoes/head_only"]
    assert "**Chosen at the top of their grid**" in "\n".join(
        pareto_lines(result["rows"], result["stats"])
    )


def test_a_recipe_variant_trains_at_its_rows_rate_and_stays_off_the_front(tmp_path):
    from bench.report_pareto import pareto_lines

    base = "propetl_adapter_b64_k0.5_mlr0.03"
    settings = replace(
        pareto.ParetoSettings.smoke_settings(tmp_path),
        steps=1,
        seeds=(1, 2),
        methods=(base, f"{base}_wu0"),
    )
    result = pareto.run(settings)
    (row,), (variant,) = result["rows"], result["variants"]
    assert row["method"] == base and variant["variant_of"] == base
    assert variant["lr"] == row["lr"] and variant["seeds"] == row["seeds"]
    assert base in result["stats"]["front"]["rotten_tomatoes"]
    assert all(variant["method"] not in f for f in result["stats"]["front"].values())
    (study,) = result["stats"]["recipe"]
    assert (study["variant"], study["b"], study["options"]) == (
        f"{base}_wu0",
        base,
        {"warmup_ratio": 0.0},
    )
    assert study["diff"] == pytest.approx(variant["acc_mean"] - row["acc_mean"])
    assert (
        json.loads((tmp_path / "pareto_recipe.json").read_text())[0]["method"] == variant["method"]
    )
    text = "\n".join(pareto_lines(result["rows"], result["stats"]))
    assert "### Recipe study" in text and "warmup_ratio 0" in text
    # the steps and evaluations a variant names reach the engine (best of its evaluations)
    longer = replace(
        pareto.METHODS_BY_NAME[f"{base}_s300_best4"],
        train={"mask_lr": 3e-2, "max_steps": 3, "eval_every": 1},
    )
    runs = pareto.method_runs(
        longer,
        "rotten_tomatoes",
        lambda: pareto._Data("rotten_tomatoes", settings),
        replace(settings, seeds=(1,)),
    )
    (record,) = runs["runs"]
    assert runs["lr"] == row["lr"] and record["steps"] == 3 and 1 <= record["best_step"] <= 3
