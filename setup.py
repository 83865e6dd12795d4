"""Build glue for the C extensions; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "drvault.chunker._fastcdc",
            sources=["native/fastcdc.c"],
            extra_compile_args=["-O3", "-std=c11"],
        ),
        Extension(
            "drvault.filesystem._sparse",
            sources=["native/sparse.c"],
            extra_compile_args=["-O3", "-std=c11"],
        ),
        Extension(
            "drvault.repository._rows",
            sources=["native/rows.c"],
            extra_compile_args=["-O3", "-std=c11"],
        ),
    ]
)
