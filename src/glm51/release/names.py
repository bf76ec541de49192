"""The production release's step names, in order (light: the CLI's help lists them)."""

STEPS = ("image", "verify", "gates", "card", "publish", "tag", "notes")
