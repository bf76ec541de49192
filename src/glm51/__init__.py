"""glm51: build, verify, serve and release GLM-5.1-NVFP4."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("glm51")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
