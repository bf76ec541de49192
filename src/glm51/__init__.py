"""glm51: build, verify, serve and release GLM-5.1-NVFP4."""

from importlib.metadata import PackageNotFoundError, version

# The canonical source, for image labels and bug reports (a clone's path means nothing).
SOURCE_URL = "https://github.com/lukealonso/glm51"

try:
    __version__ = version("glm51")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
