"""Anthropic Messages as clients speak it (Claude Code, the ``anthropic`` SDK), over OpenAI chat.

Pure translation, no I/O, one module per step: ``request`` (parse and check), ``to_chat`` (the Chat
Completions body), ``answer`` (a chat completion as a Message), ``stream`` (chat chunks as
Anthropic's stream events), ``errors``, and ``wire`` (the shapes). For example::

    >>> from iflow2api.dialects.anthropic.request import parse_request
    >>> from iflow2api.dialects.anthropic.to_chat import to_chat_request
    >>> request = parse_request(b'{"model":"claude-sonnet-4-5","max_tokens":64,'
    ...                         b'"messages":[{"role":"user","content":"hi"}]}')
    >>> to_chat_request(request, model="glm-4.7")["messages"]
    [{'role': 'user', 'content': 'hi'}]

Where the dialects do not line up:

- Text blocks of the system prompt, of a user turn and of a tool result are joined with a blank
  line; an assistant turn's text (and its thinking) blocks are joined with nothing, because they
  are the pieces of one upstream answer and the upstream should see that answer again verbatim.
- ``tool_result`` blocks become ``tool`` messages placed before the rest of their turn. With
  ``is_error`` the content gets an ``Error: `` prefix unless it already starts with "error". Images
  in a tool result go into the user message that follows, since tool messages carry only text.
- Consecutive turns of one role are one turn, as Anthropic combines them, so that an assistant
  answer split over several messages keeps its tool calls next to their results.
- ``redacted_thinking`` is dropped (opaque to any other model); thinking signatures are ignored.
- ``thinking`` sets ``reasoning_effort`` by its budget (``disabled`` is ``none``); otherwise
  ``output_config.effort`` does, if given. Blocks and tools no model behind the gateway can use
  (PDFs, files by id, Anthropic's server tools) are a 400 naming them, never silently dropped.
- A tool call whose arguments are not a JSON object gets ``input`` ``{}``: the client's schema check
  then fails and the model hears about it and retries, which inventing a key would not achieve.
- OpenAI does not say which stop sequence ended an answer, nor whether one did, so ``stop_reason``
  is never ``stop_sequence``. ``content_filter`` becomes ``refusal``; any answer with tool calls
  ends in ``tool_use`` unless it was cut off (``max_tokens``).
- OpenAI's ``prompt_tokens`` include cached tokens; Anthropic's ``input_tokens`` do not.
- Thinking blocks carry an empty ``signature`` (or the upstream's, if it sends one), and a stream
  sends its ``signature_delta`` before closing the block, as Anthropic does.
"""
