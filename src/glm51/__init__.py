"""glm51: build, verify, serve and release GLM-5.1-NVFP4."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("glm51")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"


def source_url() -> str | None:
    """Where glm51's source is hosted, for image labels and bug reports: the `Source` entry
    of `[project.urls]` in pyproject.toml (its one home), or None while it names none."""
    from importlib.metadata import metadata

    try:
        entries = metadata("glm51").get_all("Project-URL") or []
    except PackageNotFoundError:
        return None
    for entry in entries:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "source" and url.strip():
            return url.strip().rstrip("/")
    return None
