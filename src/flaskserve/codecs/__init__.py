"""Request and response bodies <-> NumPy arrays. Nothing here imports Flask."""
