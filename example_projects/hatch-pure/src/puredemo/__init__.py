"""A pure-Python package with nothing to repair."""

__all__ = ["hello"]


def hello() -> str:
    return "Hello from puredemo!"
