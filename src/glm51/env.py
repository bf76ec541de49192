"""The environment variables glm51 reads, each named once."""

RECIPE = "GLM51_RECIPE"  # the recipe file (default: the checkout's, else the packaged copy)
PROFILE = "GLM51_PROFILE"  # the serve profile
PORT = "GLM51_PORT"  # the serve port (the image sets it to its default profile's)
DEBUG = "GLM51_DEBUG"  # 1: show tracebacks
CA_BUNDLE = "GLM51_CA_BUNDLE"  # CA bundle handed to image builds as a BuildKit secret
# A test hook only (fault injection): RANK:UNIT:LAYER kills that rank mid-layer.
TEST_KILL_RANK = "GLM51_TEST_KILL_RANK"
