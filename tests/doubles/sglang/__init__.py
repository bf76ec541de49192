"""Test double for the sglang package (put tests/doubles on PYTHONPATH); not SGLang."""
