from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "bz2demo._bz2demo",
            sources=["src/_bz2demo.c"],
            libraries=["bz2"],
        )
    ]
)
