"""The HTTP side of serving, through a real `propetl serve`: requests waiting for their batch
hold no server thread (more can wait than the thread pool has threads), and an idle
keep-alive connection stays open longer than clients' own idle timeouts."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from bench.load import Server, free_port
from bench.serve_load import make_prototypes, task_names

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
#: More than anyio's 40 worker threads, which a blocking endpoint would each hold until its
#: batch was answered (no batch could then hold more than 40 requests).
CLIENTS = 64


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("serve-http") / "data"
    uid = make_prototypes(data_dir, "tiny-bert", [5])[5]
    # the batcher waits up to 3 s for a full batch of CLIENTS texts
    server = Server(
        data_dir,
        free_port(),
        worker=False,
        PROPETL_SERVE_MAX_BATCH=str(CLIENTS),
        PROPETL_SERVE_MAX_WAIT_MS="3000",
    ).start()
    try:
        yield server, uid
    finally:
        server.stop()


def test_more_requests_wait_for_one_batch_than_the_server_has_threads(served):
    import aiohttp

    server, uid = served
    tasks = task_names(5)

    async def run() -> list[dict]:
        async with aiohttp.ClientSession(
            server.url, connector=aiohttp.TCPConnector(limit=CLIENTS)
        ) as client:

            async def one(i: int) -> dict:
                body = {"prototype": uid, "task": tasks[i % 5], "text": f"text {i}"}
                async with client.post("/api/predict", json=body) as reply:
                    assert reply.status == 200, await reply.text()
                    return await reply.json()

            return await asyncio.gather(*(one(i) for i in range(CLIENTS)))

    replies = asyncio.run(run())
    assert [r["results"][0]["task"] for r in replies] == [tasks[i % 5] for i in range(CLIENTS)]
    largest = max(r["batch"]["requests"] for r in replies)
    assert largest > 40, f"at most {largest} requests shared a batch"


def _request(uid: str) -> bytes:
    body = json.dumps({"prototype": uid, "task": "t0000", "text": "still there?"}).encode()
    return (
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
        b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def _response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        rest += chunk
    return head.split(b"\r\n")[0]


def test_an_idle_keep_alive_connection_outlives_a_clients_idle_timeout(served):
    # httpx and aiohttp drop idle connections after 5 and 15 s; a server that closes first
    # races a client sending its next request (the client then reads a closed socket)
    server, uid = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(_request(uid))
        assert _response(sock).endswith(b"200 OK")
        time.sleep(6.0)  # uvicorn's own default closes idle connections after 5 s
        sock.sendall(_request(uid))
        assert _response(sock).endswith(b"200 OK")
