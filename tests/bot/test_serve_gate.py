"""`bot/serve.py`'s own gate, on its own: Bolt's second signature check is switched off here, so
a gate that skipped a kind of body would let it through to the app, and these tests see it."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from typing import Any

import pytest
from slack_bolt import App

from bot.serve import MAX_BODY_BYTES, BoundedBody, SlackEvents

SECRET = "gate-test-signing-secret"


def unguarded_app() -> App:
    """A Bolt app that checks no signature itself: whatever the gate lets through, it answers."""
    return App(
        token="xoxb-gate-test",
        signing_secret=SECRET,
        request_verification_enabled=False,
        token_verification_enabled=False,
        process_before_response=True,
    )


def call(
    wsgi: Any, body: bytes, content_type: str, signature: str | None = None
) -> tuple[str, bytes]:
    stamp = str(int(time.time()))
    if signature is None:
        base = f"v0:{stamp}:".encode() + body
        signature = "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/slack/events",
        "QUERY_STRING": "",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": stamp,
        "HTTP_X_SLACK_SIGNATURE": signature,
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "winpod",
        "SERVER_PORT": "3000",
    }
    status: list[str] = []
    chunks = wsgi(environ, lambda s, headers, *_: status.append(s))
    return status[0], b"".join(chunks)


# Requests Bolt answers without any further set-up: a JSON body and a form body.
CHALLENGE = json.dumps({"type": "url_verification", "challenge": "gate-challenge"}).encode()
SSL_CHECK = b"ssl_check=1&token=legacy"
FORM = "application/x-www-form-urlencoded"
BODIES = [(CHALLENGE, "application/json"), (SSL_CHECK, FORM)]


@pytest.mark.parametrize(("body", "content_type"), BODIES)
def test_a_forged_signature_never_reaches_the_app_whatever_the_body(
    body: bytes, content_type: str
) -> None:
    status, answer = call(
        SlackEvents(unguarded_app(), SECRET), body, content_type, "v0=" + "0" * 64
    )
    assert status.startswith("401")
    assert b"gate-challenge" not in answer


@pytest.mark.parametrize(("body", "content_type"), BODIES)
def test_a_signed_body_reaches_the_app(body: bytes, content_type: str) -> None:
    status, answer = call(SlackEvents(unguarded_app(), SECRET), body, content_type)
    assert status.startswith("200")
    assert (b"gate-challenge" in answer) == (body == CHALLENGE)


class Untouchable(io.RawIOBase):
    """A request body that must not be read."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


def test_a_content_length_over_the_limit_gets_413_without_reading_the_body() -> None:
    reached: list[dict[str, Any]] = []
    gate = BoundedBody(lambda environ, start: reached.append(environ) or [], MAX_BODY_BYTES)
    statuses: list[str] = []
    environ = {"CONTENT_LENGTH": str(MAX_BODY_BYTES + 1), "wsgi.input": Untouchable()}
    answer = b"".join(gate(environ, lambda s, h: statuses.append(s)))
    assert statuses == ["413 Request Entity Too Large"]
    assert b"over 1048576 bytes" in answer
    assert reached == []


@pytest.mark.parametrize("length", ["-1", "1e9", "0x10", "１２"])
def test_a_content_length_that_is_no_number_gets_400(length: str) -> None:
    gate = BoundedBody(lambda environ, start: [], MAX_BODY_BYTES)
    statuses: list[str] = []
    gate({"CONTENT_LENGTH": length, "wsgi.input": Untouchable()}, lambda s, h: statuses.append(s))
    assert statuses == ["400 Bad Request"]


@pytest.mark.parametrize("length", ["", "0", "512", str(MAX_BODY_BYTES)])
def test_a_body_within_the_limit_passes(length: str) -> None:
    passed: list[str] = []
    gate = BoundedBody(lambda environ, start: passed.append(length) or [], MAX_BODY_BYTES)
    gate({"CONTENT_LENGTH": length}, lambda s, h: None)
    assert passed == [length]
