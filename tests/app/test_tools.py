"""The app as a tool for other programs: the typed endpoints through gradio_client, and the same tools through
Gradio's MCP server on loopback, as an agent would call them."""
import ast
import asyncio

import pytest
from gradio_client import Client

from app.tools import MCP_TOOLS

TEXT = "The state of the [MASK:4] is strong, and the [MASK:3] of the people."


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_fill_keeps_every_fixed_character(client):
    out = client.predict(TEXT, "mdlm", 4, 7, api_name="/fill")
    assert out["text"].startswith("The state of the ") and out["text"].endswith(" of the people.")
    assert "[MASK" not in out["text"] and len(out["spans"]) == 2 and out["seed"] == 7
    assert client.predict(TEXT, "mdlm", 4, 7, api_name="/fill") == out  # same seed, same fill
    with pytest.raises(Exception, match="no span to fill"):
        client.predict("Nothing to fill.", api_name="/fill")


def test_augment_texts_never_changes_kept_words(client):
    texts = ["The dishwasher and the battery were replaced last week.", "Keep the battery dry and cool."]
    out = client.predict(texts, 3, 0.4, "words", "battery, dishwasher", 1, api_name="/augment_texts")
    assert [r["index"] for r in out] == [0, 1] and [r["text"] for r in out] == texts
    for rec in out:
        assert rec["status"] == "ok" and rec["variants"]
        for v in rec["variants"]:
            assert "battery" in v["text"]
    assert all("dishwasher" in v["text"] for v in out[0]["variants"])
    with pytest.raises(Exception, match="at least one text"):
        client.predict([], api_name="/augment_texts")


async def mcp_session(url: str, call, query: str = ""):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url + "gradio_api/mcp/" + query) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await call(session)


def test_mcp_lists_the_tools_with_documented_parameters_and_fills(app_url):
    async def listing(session):
        return (await session.list_tools()).tools

    tools = {t.name: t for t in asyncio.run(mcp_session(app_url, listing))}
    assert set(MCP_TOOLS) <= set(tools)
    chosen = asyncio.run(mcp_session(app_url, listing, "?tools=" + ",".join(MCP_TOOLS)))
    assert sorted(t.name for t in chosen) == sorted(MCP_TOOLS)  # the README's URL for agents
    fill = tools["fill"]
    assert "masked spans" in fill.description
    props = fill.inputSchema["properties"]
    assert {"text", "sampler", "steps", "seed", "model"} <= set(props) and "[MASK:n]" in props["text"]["description"]
    assert fill.inputSchema.get("required") == ["text"]

    async def calling(session):
        return await session.call_tool("fill", {"text": TEXT, "sampler": "mdlm", "steps": 4, "seed": 3})

    result = asyncio.run(mcp_session(app_url, calling))
    assert not result.isError
    body = ast.literal_eval(result.content[0].text)  # Gradio's MCP server writes the value with str()
    assert body["text"].startswith("The state of the ") and "[MASK" not in body["text"]

    async def bad(session):
        return await session.call_tool("fill", {"text": "Bad [MASK:0] span."})

    refused = asyncio.run(mcp_session(app_url, bad))
    assert refused.isError and "out of range" in refused.content[0].text


@pytest.mark.parametrize("args,message", [
    (("A [MASK:2] b.", "mdlm", 0), "steps"),
    (("A [MASK:2] b.", "mdlm", 10**9), "steps"),
    (("A [MASK:2] b.", "no-such-sampler", 4), "sampler"),
    (("A [MASK:2] b.", "mdlm", 4, 0, "../../etc"), "model"),
    (("x" * 20_001 + " [MASK:2]", "mdlm", 4), "20,000|20000|too long"),
])
def test_tools_take_the_limits_of_the_page(client, args, message):
    """Hostile or out-of-range arguments to a tool end in one clear line, as on the page."""
    with pytest.raises(Exception, match=f"(?i){message}"):
        client.predict(*args, api_name="/fill")
    with pytest.raises(Exception, match="(?i)list of strings|texts"):
        client.predict("not a list", api_name="/augment_texts")
