"""Experiments that are not library: each module runs with ``python3 -m studies.<name>``."""
