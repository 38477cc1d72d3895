"""OpenAI Chat Completions as clients speak it, and as the upstream answers it.

`request` checks what a client sends; `answer` reads and rewrites a whole completion; `stream` holds
the stream translator of this API (parsed chunks, and the byte fast path); `errors` the error body;
`wire` the shapes other dialects translate into. Pure functions and small state machines; no I/O.
"""
