"""Serve: render a recipe profile into the exact SGLang command and run it."""
