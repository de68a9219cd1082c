"""`make demo-cluster`: the production topology in miniature (services.py) and the demo that runs
the feedback pipeline on it (demo.py)."""
