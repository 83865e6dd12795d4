"""The program version, written into every snapshot."""

__version__ = "0.1.0"
