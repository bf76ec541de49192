"""The production release's step names, in order (light: the CLI's help lists them)."""

STEPS = ("image", "verify", "fidelity", "gates", "card", "publish", "tag", "notes")
# The rehearsal's (`glm51 release --rehearsal`), the same chain on the CPU with the tiny model.
REHEARSAL_STEPS = (
    "tiny-model",
    "quantize",
    "verify",
    "fidelity",
    "serve-copy",
    "smoke-bench",
    "card",
    "publish",
)
