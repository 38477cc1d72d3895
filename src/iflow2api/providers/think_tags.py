"""Reasoning written into an answer's text as ``<think>…</think>``, split out of it.

Some hosts put the model's thinking at the start of ``content`` (MiniMax without
``reasoning_split``, checked 2026-12-03: platform.minimax.io/docs/api-reference/text-openai-api).
On a stream the tags may be cut anywhere between two chunks (MiniMax-AI/MiniMax-M2#105), so
``ThinkSplitter`` holds back what might be the start of one until the next piece tells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPEN = "<think>"
CLOSE = "</think>"


@dataclass(slots=True)
class ThinkSplitter:
    """Splits an answer's text into the ``<think>…</think>`` block it starts with and the rest, fed
    piece by piece: a tag may be cut anywhere between two pieces, so what might be the start of one
    is held back until the next piece tells. Only a block at the start counts (after whitespace):
    a tag later in the answer is the answer's own text. The whitespace MiniMax puts after the block
    is dropped (a profile that sends the block back puts its own back: ``minimax.SEPARATOR``).

    >>> splitter = ThinkSplitter()
    >>> splitter.feed("<thi"), splitter.feed("nk>why</th"), splitter.feed("ink>\\n\\nso")
    (('', ''), ('why', ''), ('', 'so'))
    """

    #: "start" (no text yet), "inside" the block, "after" it (or there was none), "answer" (text seen).
    state: str = "start"
    held: str = ""
    _parts: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))

    def feed(self, text: str) -> tuple[str, str]:
        """The reasoning and the answer text that ``text`` completes."""
        reasoning, answer = self._parts
        text = self.held + text
        self.held = ""
        while text:
            if self.state == "start":
                stripped = text.lstrip()
                if stripped.startswith(OPEN):
                    self.state, text = "inside", stripped[len(OPEN) :]
                elif OPEN.startswith(stripped):
                    self.held, text = text, ""
                else:
                    self.state = "answer"
            elif self.state == "inside":
                end = text.find(CLOSE)
                if end >= 0:
                    reasoning.append(text[:end])
                    self.state, text = "after", text[end + len(CLOSE) :]
                    continue
                keep = _partial_tag(text, CLOSE)
                reasoning.append(text[: len(text) - keep])
                self.held, text = text[len(text) - keep :], ""
            elif self.state == "after":
                text = text.lstrip()
                if text:
                    self.state = "answer"
            else:
                answer.append(text)
                text = ""
        return self._take()

    def finish(self) -> tuple[str, str]:
        """What is still held when the answer ends: an unclosed block is reasoning cut short."""
        held, self.held = self.held, ""
        if self.state == "inside":
            self._parts[0].append(held)
        elif self.state != "after":
            self._parts[1].append(held)
        return self._take()

    def _take(self) -> tuple[str, str]:
        reasoning, answer = self._parts
        out = "".join(reasoning), "".join(answer)
        reasoning.clear()
        answer.clear()
        return out


def _partial_tag(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` may begin ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


def split_think(content: str) -> tuple[str | None, str]:
    """A whole answer's ``<think>`` block and the rest; None when it has none.

    >>> split_think("<think>\\nwhy\\n</think>\\n\\nHi"), split_think("Hi")
    (('\\nwhy\\n', 'Hi'), (None, 'Hi'))
    """
    if not content.lstrip().startswith(OPEN):
        return None, content
    splitter = ThinkSplitter()
    reasoning, answer = splitter.feed(content)
    more_reasoning, more_answer = splitter.finish()
    return reasoning + more_reasoning, answer + more_answer
