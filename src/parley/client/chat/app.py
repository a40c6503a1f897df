"""`parley client chat`: a prompt where live events print above the line being typed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from parley.client.api import Api
from parley.client.async_api import AsyncApi
from parley.client.chat import slash
from parley.client.chat.view import ChatView
from parley.client.stream import EventStream

# How long the session waits for its first `ready` before it reads history anyway (reading
# it after `ready` means nothing falls between the history and the live events).
FIRST_READY_SECONDS = 10.0
# A `typing` frame at most this often while the person types.
TYPING_INTERVAL_SECONDS = 3.0


def write_line(text: str) -> None:
    """Print a line; inside `patch_stdout` it appears above the prompt."""
    print(text, flush=True)


class ChatSession:
    """The prompt, the event stream and the view, tied together."""

    def __init__(self, api: AsyncApi, me: dict[str, Any]) -> None:
        self.api = api
        self.view = ChatView(api, me, write_line)
        self.stream = EventStream(api, self.view)
        self.prompt: PromptSession[str] = PromptSession(
            history=InMemoryHistory(), erase_when_done=True
        )
        self._last_typing = float("-inf")
        self._background: set[asyncio.Task[bool]] = set()

    def _on_text_changed(self, buffer: Buffer) -> None:
        """Tell the open chat that we are typing (not for commands)."""
        text = buffer.text
        chat_id = self.view.current_id
        if chat_id is None or not text or text.startswith("/"):
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_typing < TYPING_INTERVAL_SECONDS:
            return
        self._last_typing = loop.time()
        task = loop.create_task(self.stream.send({"type": "typing", "chatId": chat_id}))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _leave(self) -> None:
        """End the prompt (SIGTERM, or the stream gave up)."""
        self.stream.stop()
        app = self.prompt.app
        if app.is_running:
            app.exit(exception=EOFError())

    async def run(self, join: str | None) -> int:
        """Run until /quit, Ctrl-D, Ctrl-C or SIGTERM (0), or a dead session (1)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, self._leave)
        self.prompt.default_buffer.on_text_changed += self._on_text_changed
        streaming = loop.create_task(self.stream.run())
        streaming.add_done_callback(lambda _: self._leave())
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stream.ready.wait(), FIRST_READY_SECONDS)
            await self.view.show_chats()
            if join:
                await slash.handle(self.view, f"/join {join}")
            self.view.write("* /help lists the commands; Ctrl-D leaves")
            while not self.stream.stopped:
                try:
                    line = await self.prompt.prompt_async(self.view.prompt)
                except (EOFError, KeyboardInterrupt):
                    break
                if not await slash.handle(self.view, line):
                    break
        finally:
            self.stream.stop()
            code = await streaming
            self.view.close()
        return code


async def _chat(api: Api, join: str | None) -> int:
    async_api = AsyncApi(api)
    try:
        me = await async_api.get("/users/me")
        with patch_stdout(raw=True):
            return await ChatSession(async_api, me).run(join)
    finally:
        async_api.close()


def needs_terminal() -> str | None:
    """Why the interactive session cannot run here, if it cannot."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return "`parley client chat` needs a terminal; scripts can use `send` and `watch`"
    return None


def chat(api: Api, *, join: str | None = None) -> int:
    """Run the interactive session; the exit code."""
    return asyncio.run(_chat(api, join))
