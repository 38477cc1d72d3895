"""OpenAI Responses (``POST /v1/responses``) translated to and from Chat Completions.

Pure functions and one small state machine over dicts and bytes; no I/O, one module per step:
``request`` (parse and check), ``to_chat`` (the Chat Completions body), ``answer`` (a chat
completion as a Response, and the history kept for ``previous_response_id``), ``stream`` (chat
chunks as Responses events), ``errors``, and ``wire`` (the shapes). A route parses the client's
body, sends the chat request upstream, and turns the chat answer back into a Response.

What Chat Completions cannot say, and what we chose instead:

* Only ``function`` tools reach the model. Hosted tools (web and file search, computer use, code
  interpreter, MCP, image generation, shell, apply_patch) and free-form ``custom`` tools have no
  chat spelling: they are dropped, with a ``tool_choice`` naming one. ``allowed_tools`` becomes
  its mode, with the tools cut down to the functions it allows.
* ``developer`` messages become ``system`` ones (open models' chat templates know no developer),
  and the system messages that open the conversation are joined into one, as the iFlow CLI sends
  its prompt. Function calls join the assistant message before them, so one model turn stays one
  chat message. A reasoning item becomes the ``reasoning_content`` of the assistant message after
  it: its ``reasoning_text`` content if any, else its summary; ``encrypted_content`` is ignored.
  Images and files a tool returned follow the tool results as a user message, since a chat tool
  message carries text only.
* The model's thinking comes back as a reasoning item with one ``summary_text`` part holding all
  of it, streamed as ``response.reasoning_summary_*`` events: Codex and the SDKs show summaries,
  while Codex hides ``reasoning_text`` unless told to show raw reasoning.
* Item ids derive from the response id (``resp_X`` → ``msg_X_1``, the number being the output
  index), so an answer always translates the same way; a tool call the upstream left without an
  id gets ``call_<n>``, n counting the answer's calls.
* ``finish_reason`` ``length`` (``content_filter``) makes the response ``incomplete`` with reason
  ``max_output_tokens`` (``content_filter``), and the item being written then ``incomplete``.
* An answer with neither text nor tool calls still gets an empty message item, so clients that
  look for the assistant's message find one.
"""
