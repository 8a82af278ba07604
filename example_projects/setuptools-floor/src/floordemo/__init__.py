"""Threads, dlopen, libm and fcntl from C: what pins a wheel built on Debian 12 to glibc 2.34."""

from ._floordemo import compute, has_stat

__all__ = ["compute", "has_stat"]
