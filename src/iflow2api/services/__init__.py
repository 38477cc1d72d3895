"""What sits between the routes and the upstream: the request pipeline's middle.

``dispatch`` chooses an account and fails over (aliasing, key checks, renewal, quarantine,
redaction of the account's secrets); ``upstream_stream`` is the one normaliser of the upstream's
event stream (pure); ``answers``, ``chat_stream`` and ``streams`` read the upstream's answer off
the socket and hand it to a route's sink; ``membership`` is the pool as the routes see it.
"""
