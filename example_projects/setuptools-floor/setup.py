from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "floordemo._floordemo",
            sources=["src/_floordemo.c"],
            libraries=["m"],
            # one binary for CPython 3.9 and later: the same file imports on an old distribution
            py_limited_api=True,
            define_macros=[("Py_LIMITED_API", "0x03090000")],
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
