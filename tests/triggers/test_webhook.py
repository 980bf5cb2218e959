"""Webhooks over a real socket on 127.0.0.1: a document starts a run, the same one again gets the same run id, and
every bad request gets a clear 4xx."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from podium import ConfigError, MemoryStore
from podium.triggers import Fired, TriggerEvent, Webhook, run_id_for
from podium.triggers._http import HttpServer
from podium.triggers._webhook import HookRoutes
from tests.triggers.jobs import jobs, serving


def hook(**options: object) -> Webhook:
    return Webhook(path="/hooks/tickets", name="tickets", port=0, **options)  # type: ignore[arg-type]


async def test_a_document_starts_a_run_and_the_same_document_gets_the_same_run() -> None:
    store = MemoryStore()
    async with serving(jobs(), [hook()], store=store, execute=False) as seen, httpx.AsyncClient() as client:
        url = seen.url("tickets")
        assert url.startswith("http://127.0.0.1:")
        first = await client.post(url, json={"subject": "refund", "id": 7})
        again = await client.post(url, content=b'{ "id": 7,   "subject": "refund" }')  # the same JSON, other bytes
        other = await client.post(url, json={"subject": "refund", "id": 8})
    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert again.status_code == 200
    assert again.json() == {"run_id": first.json()["run_id"], "status": "duplicate", "run_status": "pending"}
    assert other.status_code == 202
    assert other.json()["run_id"] != first.json()["run_id"]
    assert len(await store.list_runs()) == 2
    [_, record] = [e.event for e in await store.read(first.json()["run_id"])]
    assert record.kind == "trigger_fired"
    assert record.payload == {"subject": "refund", "id": 7}
    assert [f.created for f in seen.fired] == [True, False, True]


async def test_an_idempotency_key_names_the_event() -> None:
    store = MemoryStore()
    async with serving(jobs(), [hook()], store=store, execute=False) as seen, httpx.AsyncClient() as client:
        url = seen.url("tickets")
        headers = {"Idempotency-Key": "delivery-42"}
        first = await client.post(url, json={"attempt": 1}, headers=headers)
        retried = await client.post(url, json={"attempt": 2}, headers=headers)  # the first with a key wins
        unkeyed = await client.post(url, json={"attempt": 1})
    assert first.status_code == 202
    assert first.json()["run_id"] == run_id_for("jobs", "tickets", "key:delivery-42")
    assert (retried.status_code, retried.json()["run_id"]) == (200, first.json()["run_id"])
    assert unkeyed.status_code == 202
    assert unkeyed.json()["run_id"] != first.json()["run_id"]


async def test_bad_requests_get_a_clear_4xx_and_start_nothing() -> None:
    store = MemoryStore()
    triggers = [hook(secret="s3cret", max_body=150)]
    async with serving(jobs(), triggers, store=store, execute=False) as seen, httpx.AsyncClient() as client:
        url = seen.url("tickets")
        ok = {"X-Podium-Secret": "s3cret", "Content-Type": "application/json"}
        answers = {
            "bad json": await client.post(url, content=b'{"subject": ', headers=ok),
            "nan": await client.post(url, content=b'{"n": NaN}', headers=ok),
            "empty": await client.post(url, content=b"", headers=ok),
            "not utf-8": await client.post(url, content=b'"\xff"', headers=ok),
            "form": await client.post(url, data={"a": "b"}, headers={"X-Podium-Secret": "s3cret"}),
            "no secret": await client.post(url, json={}),
            "wrong secret": await client.post(url, json={}, headers={"X-Podium-Secret": "guess"}),
            "get": await client.get(url, headers=ok),
            "elsewhere": await client.post(url + "/x", json={}, headers=ok),
            "too large": await client.post(url, json={"text": "x" * 200}, headers=ok),
            "bad key": await client.post(url, json={}, headers={**ok, "Idempotency-Key": "k" * 300}),
            "deep": await client.post(url, content=b"[" * 65 + b"]" * 65, headers=ok),
        }
    codes = {name: (r.status_code, r.json()["error"]) for name, r in answers.items()}
    assert codes["bad json"][0] == 400
    assert codes["bad json"][1].startswith("the body is not JSON: Expecting value: line 1 column 13")
    assert codes["nan"] == (400, "the body is not JSON: NaN is not a JSON number")
    assert codes["empty"] == (400, "the body is empty; send a JSON document")
    assert codes["not utf-8"] == (400, "the body is not UTF-8 text")
    assert codes["form"] == (415, "send JSON (Content-Type: application/json), not application/x-www-form-urlencoded")
    assert codes["no secret"] == (401, "the X-Podium-Secret header is missing or wrong")
    assert codes["wrong secret"][0] == 401
    assert codes["get"] == (405, "send a POST to /hooks/tickets, not a GET")
    assert answers["get"].headers["allow"] == "POST"
    assert codes["elsewhere"] == (404, "no webhook at this path")  # nor a list of those there are
    assert b"/hooks/tickets" not in answers["elsewhere"].content
    assert codes["too large"][0] == 413
    assert codes["bad key"][0] == 400
    assert codes["deep"] == (400, "the body's JSON is nested deeper than 64 levels")
    assert await store.list_runs() == []
    assert seen.fired == []


async def test_a_document_that_does_not_fit_the_workflow_is_422() -> None:
    store = MemoryStore()
    triggers = [hook(input="ticket {id}: {subject}")]
    async with serving(jobs(), triggers, store=store, execute=False) as seen, httpx.AsyncClient() as client:
        missing = await client.post(seen.url("tickets"), json={"subject": "refund"})
        fits = await client.post(seen.url("tickets"), json={"subject": "refund", "id": 3})
    assert missing.status_code == 422
    assert missing.json()["error"] == (
        "trigger 'tickets': the input template 'ticket {id}: {subject}' names 'id', which the event does not "
        "have; it has ['subject']"
    )
    assert fits.status_code == 202
    assert [e.key for e, _ in seen.refused] == [f"body-sha256:{_sha({'subject': 'refund'})}"]


def _sha(data: object) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def test_raw_http_edge_cases() -> None:
    """What httpx would not send: a chunked body, a garbled request line, a client that sends nothing."""
    async with serving(jobs(), [hook()], store=MemoryStore(), execute=False) as seen:
        port = int(seen.url("tickets").rsplit(":", 1)[1].split("/", 1)[0])

        async def raw(data: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            await writer.drain()
            answer = await reader.read()
            writer.close()
            return answer

        chunked = await raw(
            b"POST /hooks/tickets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        )
        garbled = await raw(b"HELLO\r\n\r\n")
        expect = await raw(
            b"POST /hooks/tickets HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n"
            b"Content-Type: application/json\r\n\r\n{}"
        )
    assert chunked.startswith(b"HTTP/1.1 411 Length Required\r\n")
    assert garbled.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert expect.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\n")


async def test_webhooks_share_a_port_by_path_and_refuse_a_clash() -> None:
    store = MemoryStore()
    a = Webhook(path="/a", name="a", port=0)
    b = Webhook(path="/b", name="b", port=0)
    async with serving(jobs(), [a, b], store=store, execute=False) as seen, httpx.AsyncClient() as client:
        assert seen.url("a").rsplit("/", 1)[0] == seen.url("b").rsplit("/", 1)[0]
        assert (await client.post(seen.url("b"), json={"x": 1})).json()["run_id"].startswith("b-")
    with pytest.raises(ConfigError, match=r"webhooks 'a' and 'c' are both at 127\.0\.0\.1:0/a"):
        async with serving(jobs(), [a, Webhook(path="/a", name="c", port=0)], store=store):
            pass
    with pytest.raises(ConfigError, match="two triggers are named 'a'"):
        async with serving(jobs(), [a, Webhook(path="/z", name="a", port=0)], store=store):
            pass


async def test_a_taken_port_is_a_clear_error() -> None:
    async with serving(jobs(), [hook()], store=MemoryStore(), execute=False) as seen:
        port = int(seen.url("tickets").rsplit(":", 1)[1].split("/", 1)[0])
        with pytest.raises(ConfigError, match=f"webhook 'other' cannot listen on 127.0.0.1:{port}"):
            async with serving(jobs(), [Webhook(path="/o", name="other", port=port)], store=MemoryStore()):
                pass


async def test_a_secret_that_is_not_ascii_is_compared_as_utf_8_bytes() -> None:
    secret = "pässwört-✓"
    triggers = [hook(secret=secret)]
    async with serving(jobs(), triggers, store=MemoryStore(), execute=False) as seen, httpx.AsyncClient() as client:
        url = seen.url("tickets")
        right = await client.post(url, json={"n": 1}, headers={b"X-Podium-Secret": secret.encode()})
        latin = await client.post(url, json={"n": 2}, headers={b"X-Podium-Secret": secret[:8].encode("latin-1")})
        wrong = await client.post(url, json={"n": 3}, headers={b"X-Podium-Secret": "pässwört-x".encode()})
    assert right.status_code == 202
    assert (latin.status_code, wrong.status_code) == (401, 401)
    assert [f.event.payload for f in seen.fired] == [{"n": 1}]


async def test_a_store_failure_is_503_without_its_details(caplog: pytest.LogCaptureFixture) -> None:
    async def fire(hook: Webhook, event: TriggerEvent) -> Fired:
        raise OSError("disk full at /srv/podium/journal.db")

    server = HttpServer("127.0.0.1", 0, HookRoutes([hook()], fire).handle, max_body=1000)
    await server.start()
    try:
        with caplog.at_level(logging.WARNING, logger="podium.triggers"):
            async with httpx.AsyncClient() as client:
                answer = await client.post(f"http://127.0.0.1:{server.port}/hooks/tickets", json={"n": 1})
    finally:
        await server.close()
    assert answer.status_code == 503
    assert answer.json() == {"error": "the run could not be journaled now; nothing was started, try again"}
    assert answer.headers["retry-after"] == "1"
    [record] = caplog.records
    assert "tickets" in record.getMessage()
    assert record.exc_info is not None
    assert "/srv/podium/journal.db" in str(record.exc_info[1])


def test_bad_webhook_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="must start with '/'"):
        Webhook(path="hooks")
    with pytest.raises(ConfigError, match="port 70000"):
        Webhook(port=70000)
    assert "s3cret" not in repr(Webhook(secret="s3cret"))
