"""SGLang as glm51 sees it: typed settings rendered to flags, pass-through parsing, and the
installed server's `--help` (its flags and choice lists). Pure, except the one probe."""
