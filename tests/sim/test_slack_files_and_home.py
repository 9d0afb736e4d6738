"""The simulated Slack's files.uploadV2 flow, views.publish and app_home_opened delivery,
through slack_sdk and the control API."""

from __future__ import annotations

import json
import threading
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
import yaml
from sim_process import RunningSim
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

pytestmark = pytest.mark.wire


@pytest.fixture(scope="module")
def client(seed_sim: RunningSim) -> WebClient:
    token = yaml.safe_load(seed_sim.config.read_text())["slack"]["bot_token"]
    return WebClient(token=token, base_url=seed_sim.urls["slack_api"])


def test_upload_v2_lands_in_the_thread_and_is_recorded_whole(
    seed_sim: RunningSim, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel="C0FILES", text="request")
    script = "# winpod-script: hns-reset\nStop-Service kubeproxy -Force\n" + "x" * 5000
    done = client.files_upload_v2(
        channel="C0FILES",
        thread_ts=parent["ts"],
        content=script,
        filename="hns-reset.ps1",
        title="hns-reset on akswin000002",
        initial_comment="Exactly what will run",
    )
    file_id = done["file"]["id"]

    uploads = seed_sim.control("GET", "/sim/v1/slack/files")["files"]
    [upload] = [f for f in uploads if f["id"] == file_id]
    assert upload["content"] == script
    assert (upload["name"], upload["title"]) == ("hns-reset.ps1", "hns-reset on akswin000002")
    assert (upload["channel"], upload["thread_ts"], upload["completed"]) == (
        "C0FILES",
        parent["ts"],
        True,
    )
    [message] = seed_sim.control("GET", "/sim/v1/slack/messages?channel=C0FILES")["messages"]
    [reply] = message["replies"]
    assert reply["text"] == "Exactly what will run"
    assert reply["files"][0]["id"] == file_id


def test_a_file_never_sent_cannot_be_completed(client: WebClient) -> None:
    started = client.files_getUploadURLExternal(filename="x.ps1", length=3)
    with pytest.raises(SlackApiError) as raised:
        client.files_completeUploadExternal(
            files=[{"id": started["file_id"], "title": "x"}], channel_id="C0FILES"
        )
    assert raised.value.response["error"] == "file_not_found"


def test_refused_uploads_fail_the_upload_v2_call(seed_sim: RunningSim, client: WebClient) -> None:
    seed_sim.control("POST", "/sim/v1/slack/uploads", {"refuse": True})
    try:
        with pytest.raises(OSError):  # urllib's HTTPError from the upload URL
            client.files_upload_v2(channel="C0REFUSED", content="x", filename="x.ps1")
    finally:
        seed_sim.control("POST", "/sim/v1/slack/uploads", {"refuse": False})
    assert seed_sim.control("GET", "/sim/v1/slack/messages?channel=C0REFUSED")["messages"] == []


def test_views_publish_keeps_one_home_per_user_and_refuses_over_100_blocks(
    seed_sim: RunningSim, client: WebClient
) -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "node"}}
    first = client.views_publish(user_id="U0HOME", view={"type": "home", "blocks": [section]})
    again = client.views_publish(user_id="U0HOME", view={"type": "home", "blocks": [section] * 2})
    assert first["view"]["id"] == again["view"]["id"]
    home = seed_sim.control("GET", "/sim/v1/slack/home?user=U0HOME")["view"]
    assert len(home["blocks"]) == 2

    with pytest.raises(SlackApiError) as raised:
        client.views_publish(user_id="U0HOME", view={"type": "home", "blocks": [section] * 101})
    assert raised.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError):
        client.views_publish(user_id="U0HOME", view={"type": "modal", "blocks": []})


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/slack/events", _Receiver.received
    server.shutdown()
    server.server_close()


def test_app_home_opened_is_sent_signed_to_the_request_url(
    seed_sim: RunningSim, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver
    sent = seed_sim.control(
        "POST", "/sim/v1/slack/events/app_home_opened", {"user": "U0OPENER", "url": url}
    )
    assert sent["status"] == 200
    [(headers, body)] = received
    secret = yaml.safe_load(seed_sim.config.read_text())["slack"]["signing_secret"]
    assert SignatureVerifier(secret).is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    callback = json.loads(body)
    assert callback["type"] == "event_callback"
    assert callback["event"]["type"] == "app_home_opened"
    assert (callback["event"]["user"], callback["event"]["tab"]) == ("U0OPENER", "home")


def test_app_home_opened_without_a_url_needs_a_socket_mode_client(seed_sim: RunningSim) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        seed_sim.control("POST", "/sim/v1/slack/events/app_home_opened", {"user": "U0OPENER"})
    assert raised.value.code == 409
    assert "Socket Mode" in json.loads(raised.value.read())["error"]
