"""The simulated Slack Web API through slack_sdk, Bolt's `respond` and the control API."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import yaml
from sim_process import RunningSim
from slack_bolt import App
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.models.blocks import ActionsBlock, ButtonElement, SectionBlock
from slack_sdk.web.async_client import AsyncWebClient

pytestmark = pytest.mark.wire


def bot_token(sim: RunningSim) -> str:
    token: str = yaml.safe_load(sim.config.read_text())["slack"]["bot_token"]
    return token


@pytest.fixture(scope="module")
def client(seed_sim: RunningSim) -> WebClient:
    return WebClient(token=bot_token(seed_sim), base_url=seed_sim.urls["slack_api"])


def messages(sim: RunningSim, channel: str) -> dict[str, Any]:
    result: dict[str, Any] = sim.control("GET", f"/sim/v1/slack/messages?channel={channel}")
    return result


def test_an_updated_message_reads_back_in_its_final_version(
    seed_sim: RunningSim, client: WebClient
) -> None:
    blocks = [SectionBlock(text="*akswin000002*: diagnosing…")]
    posted = client.chat_postMessage(channel="C0UPDATE", text="diagnosing", blocks=blocks)
    assert posted["ok"] and posted["channel"] == "C0UPDATE"
    assert posted["message"]["text"] == "diagnosing"

    buttons = [ActionsBlock(elements=[ButtonElement(text="Run hns-reset", action_id="run")])]
    updated = client.chat_update(
        channel="C0UPDATE", ts=posted["ts"], text="1 finding", blocks=buttons
    )
    assert updated["ts"] == posted["ts"]

    [message] = messages(seed_sim, "C0UPDATE")["messages"]
    assert message["ts"] == posted["ts"]
    assert message["text"] == "1 finding"
    assert message["blocks"][0]["elements"][0]["action_id"] == "run"
    assert message["edited"]["user"] == message["user"]


def test_timestamps_are_unique_and_increasing(client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel="C0STAMPS", text=str(i))["ts"] for i in range(5)]
    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 5
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


def test_thread_replies_are_listed_under_their_parent(
    seed_sim: RunningSim, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel="C0THREAD", text="approval needed")
    for text in ("approved by <@U0APPROVER1>", "hns-reset done"):
        reply = client.chat_postMessage(channel="C0THREAD", text=text, thread_ts=parent["ts"])
        assert reply["message"]["thread_ts"] == parent["ts"]

    [message] = messages(seed_sim, "C0THREAD")["messages"]
    assert [r["text"] for r in message["replies"]] == [
        "approved by <@U0APPROVER1>",
        "hns-reset done",
    ]


def test_an_ephemeral_message_is_kept_apart_from_the_channel(
    seed_sim: RunningSim, client: WebClient
) -> None:
    sent = client.chat_postEphemeral(channel="C0EPHEM", user="U0TYPIST", text="usage: …")
    assert sent["message_ts"]

    seen = messages(seed_sim, "C0EPHEM")
    assert seen["messages"] == []
    [ephemeral] = seen["ephemeral"]
    assert ephemeral["user"] == "U0TYPIST"
    assert ephemeral["text"] == "usage: …"


def test_a_wrong_or_missing_token_is_refused(seed_sim: RunningSim) -> None:
    wrong = WebClient(token="xoxb-not-the-bot", base_url=seed_sim.urls["slack_api"])
    with pytest.raises(SlackApiError) as refused:
        wrong.chat_postMessage(channel="C0AUTH", text="hello")
    assert refused.value.response.status_code == 200
    assert refused.value.response["error"] == "invalid_auth"

    anonymous = WebClient(base_url=seed_sim.urls["slack_api"])
    with pytest.raises(SlackApiError) as missing:
        anonymous.auth_test()
    assert missing.value.response["error"] == "not_authed"
    assert messages(seed_sim, "C0AUTH")["messages"] == []


@pytest.mark.parametrize("channel", ["general", "#general", "c0lower", "X0NOPE", "C0GONE"])
def test_an_unknown_channel_is_channel_not_found(
    seed_sim: RunningSim, client: WebClient, channel: str
) -> None:
    seed_sim.control("POST", "/sim/v1/slack/missing", {"channels": ["C0GONE"]})
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel=channel, text="hello")
    assert refused.value.response["error"] == "channel_not_found"


def test_a_user_id_as_channel_posts_to_the_apps_dm(seed_sim: RunningSim, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="U0APPROVER2", text="your approval is needed")
    assert posted["channel"] == "D0APPROVER2"
    assert client.conversations_info(channel="D0APPROVER2")["channel"]["is_im"] is True
    assert messages(seed_sim, "D0APPROVER2")["messages"][0]["text"] == "your approval is needed"


def test_updating_an_unknown_message_is_message_not_found(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as refused:
        client.chat_update(channel="C0UPDATE", ts="1000000000.000001", text="x")
    assert refused.value.response["error"] == "message_not_found"


def test_a_rate_limited_post_is_retried_after_retry_after(seed_sim: RunningSim) -> None:
    seed_sim.control(
        "POST", "/sim/v1/faults/slack", {"fail_next": 1, "mode": "429", "retry_after_s": 1}
    )
    client = WebClient(
        token=bot_token(seed_sim),
        base_url=seed_sim.urls["slack_api"],
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    started = time.monotonic()
    posted = client.chat_postMessage(channel="C0RATE", text="sweep done")
    assert time.monotonic() - started >= 1  # it waited as Retry-After asked

    assert posted["ok"]
    assert [m["text"] for m in messages(seed_sim, "C0RATE")["messages"]] == ["sweep done"]
    calls = seed_sim.control("GET", "/sim/v1/slack/calls?method=chat.postMessage&channel=C0RATE")
    assert [c["status"] for c in calls["calls"]] == [429, 200]
    assert calls["calls"][0]["response"] == {"ok": False, "error": "ratelimited"}


def test_usergroup_members_come_from_the_control_api(
    seed_sim: RunningSim, client: WebClient
) -> None:
    seed_sim.control("POST", "/sim/v1/slack/usergroups", {"S0ONCALL": ["U0ALICE", "U0BOB"]})
    assert client.usergroups_users_list(usergroup="S0ONCALL")["users"] == ["U0ALICE", "U0BOB"]
    with pytest.raises(SlackApiError) as refused:
        client.usergroups_users_list(usergroup="S0NOBODY")
    assert refused.value.response["error"] == "no_such_subteam"


def test_users_are_generated_unless_listed_as_missing(
    seed_sim: RunningSim, client: WebClient
) -> None:
    user = client.users_info(user="U0CAROL")["user"]
    assert user["id"] == "U0CAROL"
    assert user["name"] and user["real_name"] and user["profile"]["display_name"]

    seed_sim.control("POST", "/sim/v1/slack/missing", {"users": ["U0GONE"]})
    with pytest.raises(SlackApiError) as refused:
        client.users_info(user="U0GONE")
    assert refused.value.response["error"] == "user_not_found"


def test_auth_test_views_open_and_conversations_info(client: WebClient) -> None:
    me = client.auth_test()
    assert me["user_id"] and me["bot_id"] and me["team_id"]
    assert client.users_info(user=me["user_id"])["user"]["is_bot"] is True

    modal = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Open RDP"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "ttl?"}}],
    }
    opened = client.views_open(trigger_id="12345.98765.abcd", view=modal)
    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["title"]["text"] == "Open RDP"

    channel = client.conversations_info(channel="C0ALERTS")["channel"]
    assert channel["id"] == "C0ALERTS" and channel["is_channel"] is True


def test_calls_are_recorded_in_order_without_tokens(
    seed_sim: RunningSim, client: WebClient
) -> None:
    before = seed_sim.control("GET", "/sim/v1/slack/calls")["calls"]
    since = before[-1]["seq"] if before else 0
    client.chat_postMessage(channel="C0RECORD", text="one")
    client.api_call("chat.postMessage", params={"channel": "C0RECORD", "text": "two"})

    calls = seed_sim.control("GET", f"/sim/v1/slack/calls?since={since}")["calls"]
    assert [c["params"].get("text") for c in calls] == ["one", "two"]
    assert calls[0]["seq"] < calls[1]["seq"]
    assert all(c["response"]["ok"] for c in calls)
    token = bot_token(seed_sim)
    assert token not in str(calls)


def test_bolt_starts_against_it_and_respond_uses_response_urls(seed_sim: RunningSim) -> None:
    app = App(
        token=bot_token(seed_sim),
        signing_secret="unused",
        client=WebClient(token=bot_token(seed_sim), base_url=seed_sim.urls["slack_api"]),
    )
    assert app.client.auth_test()["ok"]

    url = seed_sim.control(
        "POST", "/sim/v1/slack/response_url", {"channel": "C0RESPOND", "user": "U0TYPIST"}
    )["response_url"]
    respond = Respond(response_url=url)
    assert respond(text="working on it…").status_code == 200
    assert respond(text="done: 1 finding", replace_original=True).status_code == 200
    assert respond(text="findings for everyone", response_type="in_channel").status_code == 200

    seen = messages(seed_sim, "C0RESPOND")
    assert [e["text"] for e in seen["ephemeral"]] == ["done: 1 finding"]
    assert [m["text"] for m in seen["messages"]] == ["findings for everyone"]
    assert seen["ephemeral"][0]["user"] == "U0TYPIST"
    calls = seed_sim.control("GET", "/sim/v1/slack/calls?method=response_url&channel=C0RESPOND")
    assert len(calls["calls"]) == 3


def test_a_response_url_replaces_and_deletes_the_message_of_an_interaction(
    seed_sim: RunningSim, client: WebClient
) -> None:
    posted = client.chat_postMessage(channel="C0BUTTON", text="approve?")
    url = seed_sim.control(
        "POST",
        "/sim/v1/slack/response_url",
        {"channel": "C0BUTTON", "user": "U0APPROVER1", "message_ts": posted["ts"]},
    )["response_url"]
    Respond(response_url=url)(text="approved", replace_original=True)
    assert [m["text"] for m in messages(seed_sim, "C0BUTTON")["messages"]] == ["approved"]

    Respond(response_url=url)(delete_original=True)
    assert messages(seed_sim, "C0BUTTON")["messages"] == []


def test_the_async_client_works_too(seed_sim: RunningSim) -> None:
    async def post_and_look_up() -> tuple[str, str]:
        client = AsyncWebClient(token=bot_token(seed_sim), base_url=seed_sim.urls["slack_api"])
        posted = await client.chat_postMessage(channel="C0ASYNC", text="from asyncio")
        user = await client.users_info(user="U0DAVE")
        return posted["ts"], user["user"]["id"]

    ts, user_id = asyncio.run(post_and_look_up())
    assert user_id == "U0DAVE"
    assert messages(seed_sim, "C0ASYNC")["messages"][0]["ts"] == ts
