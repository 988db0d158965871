"""``python -m flaskserve``: the command line."""

from __future__ import annotations

from .cli import main

main()
