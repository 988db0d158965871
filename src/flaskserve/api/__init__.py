"""HTTP surfaces, one blueprint each. They decode, call a runtime, encode."""
