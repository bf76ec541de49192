"""`glm51 smoke`: the smoke suite (protocol tier, GLM tier) against a served endpoint."""
