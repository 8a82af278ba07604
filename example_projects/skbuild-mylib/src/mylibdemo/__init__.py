"""Greetings produced by libmylib."""

from ._mylibdemo import greet

__all__ = ["greet"]
