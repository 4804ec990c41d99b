"""A generative job through the product: worker run, registry curves, playground, REST."""

import pytest

from tests.dashboard_stack import TINY_GENERATIVE, make_stack

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from make_stack(tmp_path_factory.mktemp("generative"), TINY_GENERATIVE)


def test_worker_run_records_rouge_and_accuracy_curves(stack):
    series = stack.registry.metric_series(stack.job_id)
    names = {(task, split, name) for task, split, name in series}
    assert {
        ("bbc_headlines", "dev", "rougeL"),
        ("bbc_headlines", "test", "rouge1"),
        ("rotten_tomatoes", "dev", "accuracy"),
    } <= names


def test_playground_and_rest_answer_with_generated_text(stack):
    from fastapi.testclient import TestClient

    from app.auth import get_auth
    from app.playground import get_engine
    from app.server import create_app
    from app.ui.playground import respond

    engine = get_engine()
    assert engine.is_generative(stack.uid)
    answer = engine.predict(stack.uid, "bbc_headlines", "Oil prices fell sharply today.")
    assert answer.results[0]["task"] == "bbc_headlines"
    assert isinstance(answer.results[0]["text"], str) and answer.inference_ms > 0
    chunks = list(engine.stream(stack.uid, "rotten_tomatoes", "a warm and funny film"))
    assert chunks[-1].done and chunks[-1].tokens > 0
    shown = list(respond(stack.uid, "bbc_headlines", "Oil prices fell sharply today.", ""))
    assert "pp-generated" in shown[-1][0] and "tokens/s" in shown[-1][1]
    with TestClient(create_app(get_auth(), ui=False)) as client:
        reply = client.post(
            "/api/predict",
            json={"prototype": stack.uid, "task": "bbc_headlines", "text": "Shares rose."},
        )
        assert reply.status_code == 200, reply.text
        assert "text" in reply.json()["results"][0]
        mixed = client.post(
            "/api/predict",
            json={"prototype": stack.uid, "items": [{"task": "bbc_headlines", "text": "a"}]},
        )
        assert mixed.status_code == 422 and "one task at a time" in mixed.text


def test_text_to_text_job_on_an_encoder_is_refused_at_submission():
    from pydantic import ValidationError

    from app.specs import JobSpec

    with pytest.raises(ValidationError, match="needs a generative backbone"):
        JobSpec.model_validate(
            {"name": "x", "config": {"backbone": "tiny-bert", "tasks": ["bbc_headlines"]}}
        )


def _trained(stack, backbone: str) -> str:
    """A two-step prototype with one classification task over `backbone`."""
    from worker.runner import execute

    registry = stack.registry
    job_id = registry.submit_job(
        {
            "config": {
                "backbone": backbone,
                "tasks": ["rotten_tomatoes"],
                "max_examples": 8,
                "max_steps": 2,
                "batch_size": 4,
                "eval_every": 2,
                "max_length": 32,
                "max_target_length": 6,
            }
        }
    )
    assert execute(job_id, registry=registry) == "succeeded", registry.get_job(job_id).error
    return registry.prototype_for_job(job_id).uid


def test_a_text_to_text_task_is_checked_on_the_prototypes_backbone_when_added(stack):
    """Without a backbone, a job adding tasks is checked on the prototype's (tiny-t5 takes
    bbc_headlines; tiny-bert refuses it with the field named), not on the default one."""
    from fastapi.testclient import TestClient

    from app.auth import get_auth
    from app.server import create_app
    from app.ui import grow
    from app.ui.common import Ctx

    t5, bert = _trained(stack, "tiny-t5"), _trained(stack, "tiny-bert")
    with TestClient(create_app(get_auth(), ui=False)) as client:
        reply = client.post(
            f"/api/prototypes/{t5}/tasks",
            json={"tasks": ["bbc_headlines"], "config": {"max_steps": 2}},
        )
        assert reply.status_code == 201, reply.text
        assert (
            client.get(f"/api/jobs/{reply.json()['id']}").json()["spec"]["config"]["backbone"]
            == "tiny-t5"
        )
        reply = client.post(
            "/api/jobs", json={"base_prototype": t5[:8], "config": {"tasks": ["bbc_headlines"]}}
        )
        assert reply.status_code == 201, reply.text
        reply = client.post(f"/api/prototypes/{bert}/tasks", json={"tasks": ["bbc_headlines"]})
        assert reply.status_code == 422, reply.text
        [error] = reply.json()["detail"]
        assert error["loc"] == ["body", "tasks", 0]  # where this route's body has it
        assert "needs a generative backbone" in error["msg"]
    message, job_id = grow.submit_add(
        Ctx(get_auth()),
        None,
        "",
        "",
        t5,
        ["bbc_headlines"],
        {"backbone": "minilm-l6", "max_steps": 2},
    )
    assert job_id is not None, message
    message, job_id = grow.submit_add(
        Ctx(get_auth()), None, "", "", bert, ["bbc_headlines"], {"max_steps": 2}
    )
    assert job_id is None and "needs a generative backbone" in message
    for job in stack.registry.list_jobs(status="queued"):
        stack.registry.request_cancel(job.id)
