"""An async ``ChatStream`` shows its state and the reply so far in a notebook."""

from __future__ import annotations

import pytest

from ailib_anyio import open_client
from ailib_anyio.testing import MockProvider, ScriptedReply

pytestmark = pytest.mark.anyio


async def test_a_stream_shows_its_state_and_text_so_far(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="<script>x</script> done", chunk_size=9, usage=(2, 3)))
    client = open_client("openai/gpt-4o", api_key="sk-test-1234567", base_url=mock.openai_base_url)
    async with client:
        stream = client.chat().user("hi").stream()
        assert stream._repr_html_().startswith(
            '<div class="ailib-anyio"><strong>ChatStream (unopened)</strong><table>'
        )
        async with stream:
            await stream.__anext__()
            html = stream._repr_html_()
            assert "<strong>ChatStream (open)</strong>" in html
            assert "&lt;script&gt;x</pre>" in html and "<script" not in html
            assert '>text so far</th><td style="text-align:left">9 characters</td>' in html
            assert ">events so far</th>" not in html  # counted by the sync stream only
            async for _ in stream:
                pass
            markdown = stream._repr_markdown_()
            assert markdown.startswith(
                "**ChatStream (finished)**\n\n> &lt;script&gt;x&lt;/script&gt; done\n\n"
                "- state: finished\n- text so far: 23 characters\n- model: gpt-4o\n"
                "- finish: stop\n- tokens: 2 in, 3 out\n"
            )
        assert "**ChatStream (closed)**" in stream._repr_markdown_()
