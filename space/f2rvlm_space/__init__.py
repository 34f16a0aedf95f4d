"""Helpers of the F2RVLM Space (space/app.py): engine (model, imports, results), render (HTML), fixtures (test exports)."""
