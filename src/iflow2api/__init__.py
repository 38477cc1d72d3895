"""iflow2api: an OpenAI-compatible gateway for iFlow models and any OpenAI-compatible upstream."""

__version__ = "0.1.0"
