"""AGNT Traces: every LLM call through a hosted prompt becomes a trace; agents fix bad calls in a loop."""

__version__ = "0.1.0"
__all__ = ["__version__"]
