"""Fixtures the unit tests share (the recipe's own are in tests/conftest.py)."""

import pytest


@pytest.fixture
def profile(recipe):
    """The model card's profile: 8x RTX PRO 6000, the fork's b12x flags."""
    return recipe.profile("rtx-pro-6000-x8")[1]
