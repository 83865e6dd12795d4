"""Build glue for the one C extension; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "drvault.chunker._fastcdc",
            sources=["native/fastcdc.c"],
            extra_compile_args=["-O3", "-std=c11"],
        )
    ]
)
