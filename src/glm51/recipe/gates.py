"""Throughput gates: the model card's figures, which a release must reach."""

from pydantic import Field

from glm51.recipe.base import Strict


class Gates(Strict):
    profile: str = Field(description="the profile the figures were measured with")
    tolerance: float = Field(0.05, ge=0, lt=1, description="fraction below a figure still passing")
    short_tg_tok_s: float = Field(gt=0, description="single-stream decode, short prompt")
    tg_32k_tok_s: float = Field(gt=0, description="single-stream decode at 32K context")
    tg_128k_tok_s: float = Field(gt=0, description="single-stream decode at 128K context")
    c32_tok_s: float = Field(gt=0, description="aggregate decode at 32 concurrent streams")
    c64_tok_s: float = Field(gt=0, description="aggregate decode at 64 concurrent streams")
