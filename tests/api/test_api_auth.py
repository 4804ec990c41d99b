"""REST API with login on: tokens, revocation, and owners (no one changes another's work)."""

from __future__ import annotations

import pytest

from tests.dashboard_stack import token_for

SPEC = {
    "config": {
        "backbone": "tiny-bert",
        "tasks": ["rotten_tomatoes"],
        "max_examples": 16,
        "max_steps": 2,
    }
}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/jobs"),
        ("post", "/api/jobs"),
        ("get", "/api/jobs/1"),
        ("post", "/api/jobs/1/cancel"),
        ("post", "/api/jobs/1/retry"),
        ("get", "/api/tasks"),
        ("get", "/api/backbones"),
        ("get", "/api/prototypes"),
        ("get", "/api/prototypes/x/masks"),
        ("delete", "/api/prototypes/x/masks/t"),
        ("post", "/api/predict"),
        ("get", "/api/auth/me"),
    ],
)
def test_no_login_is_401(auth_client, method, path):
    reply = auth_client.request(method, path, json=SPEC if method == "post" else None)
    assert reply.status_code == 401, (path, reply.text)
    assert reply.headers["www-authenticate"] == "Bearer"


def test_wrong_password_and_forged_token(auth_client):
    assert (
        auth_client.post(
            "/api/auth/token", json={"username": "alice", "password": "nope"}
        ).status_code
        == 401
    )
    headers = token_for(auth_client, "alice", "wonder")
    token = headers["Authorization"]
    forged = {"Authorization": token[:-1] + ("1" if token[-1] == "0" else "0")}  # always differs
    assert auth_client.get("/api/jobs", headers=forged).status_code == 401


def test_owner_cancels_others_get_404(auth_client):
    alice = token_for(auth_client, "alice", "wonder")
    bob = token_for(auth_client, "bob", "builder")
    job = auth_client.post("/api/jobs", json={**SPEC, "owner": "mallory"}, headers=alice).json()
    assert job["owner"] == "alice"
    assert auth_client.get("/api/auth/me", headers=bob).json()["user"] == "bob"
    refused = auth_client.post(f"/api/jobs/{job['id']}/cancel", headers=bob)
    assert refused.status_code == 404 and refused.json()["detail"] == f"no job {job['id']}"
    assert auth_client.post(f"/api/jobs/{job['id']}/retry", headers=bob).status_code == 404
    assert auth_client.post(f"/api/jobs/{job['id']}/cancel", headers=alice).status_code == 200
    root = token_for(auth_client, "root", "toor")
    assert auth_client.post(f"/api/jobs/{job['id']}/retry", headers=root).status_code == 200
    auth_client.post(f"/api/jobs/{job['id']}/cancel", headers=root)


def test_others_cannot_delete_masks(auth_client, stack):
    bob = token_for(auth_client, "bob", "builder")
    reply = auth_client.delete(f"/api/prototypes/{stack.uid}/masks/bbc_news", headers=bob)
    assert reply.status_code == 404  # the job belongs to "local"
    assert reply.json()["detail"] == f"no prototype {stack.uid}"
    assert (
        auth_client.delete(f"/api/prototypes/{stack.uid}/masks/sst2", headers=bob).status_code
        == 404
    )


def test_revoked_token_is_refused(auth_client):
    alice = token_for(auth_client, "alice", "wonder")
    assert auth_client.get("/api/jobs", headers=alice).status_code == 200
    assert auth_client.delete("/api/auth/token", headers=alice).status_code == 204
    assert auth_client.get("/api/jobs", headers=alice).status_code == 401
    assert (
        auth_client.get("/api/jobs", headers=token_for(auth_client, "alice", "wonder")).status_code
        == 200
    )
