"""The package's version, in a module of its own so any module may import it without a cycle."""

__version__ = "0.1.0"
