"""Experiment tracking of a run (issue 15): TensorBoard event files in the run folder, and a
real local MLflow store (SQLite, artifacts in a local folder) when PROPETL_MLFLOW_TRACKING_URI
is set."""

from __future__ import annotations

from propetl.config import TrainConfig
from propetl.training import train

TINY = dict(
    backbone="tiny-bert",
    tasks=["rotten_tomatoes", "bbc_news"],
    max_examples=16,
    max_steps=2,
    batch_size=8,
    eval_every=2,
)


def test_tensorboard_and_mlflow(tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # the default artifact root, ./mlartifacts or ./mlruns
    monkeypatch.setenv("PROPETL_MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PROPETL_MLFLOW_EXPERIMENT", "tracking-test")
    run_dir = tmp_path / "run"
    result = train(TrainConfig(**TINY), run_dir, resume=False)

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "dev/rotten_tomatoes/accuracy", "test/bbc_news/accuracy"} <= tags
    per_task = {t for t in tags if t.startswith("train/loss/")}  # tasks of the 2 batches
    assert per_task and per_task <= {"train/loss/rotten_tomatoes", "train/loss/bbc_news"}
    [test_point] = events.Scalars("test/rotten_tomatoes/accuracy")
    assert abs(test_point.value - result.test_metrics["rotten_tomatoes"]["accuracy"]) < 1e-6

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run((run_dir / "mlflow_run_id").read_text())
    assert run.info.status == "FINISHED"
    assert run.data.params["backbone"] == "tiny-bert"
    assert run.data.params["propetl.petl"] == "adapter"
    assert (
        abs(
            run.data.metrics["test/bbc_news/accuracy"] - result.test_metrics["bbc_news"]["accuracy"]
        )
        < 1e-6
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert "model/propetl_config.json" in artifacts
    assert mlflow.active_run() is None
