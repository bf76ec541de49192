"""Gates: the model card's throughput figures, which a release must reach, and the fidelity
to BF16 (`[gates.fidelity]`)."""

from pydantic import Field

from glm51.recipe.base import Strict
from glm51.recipe.fidelity import FidelityGates


class Gates(Strict):
    profile: str = Field(description="the profile the figures were measured with")
    tolerance: float = Field(0.05, ge=0, lt=1, description="fraction below a figure still passing")
    short_tg_tok_s: float = Field(gt=0, description="single-stream decode, short prompt")
    tg_32k_tok_s: float = Field(gt=0, description="single-stream decode at 32K context")
    tg_128k_tok_s: float = Field(gt=0, description="single-stream decode at 128K context")
    c32_tok_s: float = Field(gt=0, description="aggregate decode at 32 concurrent streams")
    c64_tok_s: float = Field(gt=0, description="aggregate decode at 64 concurrent streams")
    fidelity: FidelityGates = Field(description="KL against BF16 (`glm51 fidelity`)")


class SmokeFloors(Strict):
    """Floors of the smoke suite's GLM tier: below one, the served model is broken."""

    first_token_logprob: float = Field(
        -1.0, le=0, description="logprob of the first answer token on a fixed factual prompt"
    )
    gsm8k_min_score: float = Field(
        0.75, ge=0, le=1, description="fraction of the shipped GSM8K items answered right"
    )
    gsm8k_items: int = Field(12, ge=1, description="GSM8K items asked (after the few-shot ones)")
    accept_length: float = Field(
        2.0, ge=1, description="speculative decoding's average accept length (/server_info)"
    )
    needle_tokens: tuple[int, ...] = Field(
        (32768, 128000), min_length=1, description="context lengths the needle is hidden in"
    )
