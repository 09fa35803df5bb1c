"""tokensim: discrete-event simulator of LLM token-package demand."""

__version__ = "0.1.0"
