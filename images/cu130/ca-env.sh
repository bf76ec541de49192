# Sourced by the install steps of Dockerfile.cu130. When the build was given the optional
# `ca_bundle` BuildKit secret (a TLS-intercepting proxy's CA), point pip, requests and apt at it.
# The bundle lives only in the RUN step's tmpfs mount: nothing here writes it into a layer.
if [ -s /run/secrets/ca_bundle ]; then
    export PIP_CERT=/run/secrets/ca_bundle SSL_CERT_FILE=/run/secrets/ca_bundle
    export REQUESTS_CA_BUNDLE=/run/secrets/ca_bundle
    export APT_CONFIG=/usr/local/lib/glm51/apt-ca.conf
fi
