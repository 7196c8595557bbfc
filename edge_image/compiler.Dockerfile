# Google's Edge TPU compiler in an image, for build servers without it:
#   docker build -f edge_image/compiler.Dockerfile -t coral-retrain/edgetpu-compiler:16 edge_image
#   retrain run ... --set compiler_image=coral-retrain/edgetpu-compiler:16
# It needs Coral's apt repository (packages.cloud.google.com), so build it where that is reachable.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends curl gnupg ca-certificates \
 && curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | gpg --dearmor -o /usr/share/keyrings/coral.gpg \
 && echo "deb [signed-by=/usr/share/keyrings/coral.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main" \
    > /etc/apt/sources.list.d/coral-edgetpu.list \
 && apt-get update && apt-get install -y --no-install-recommends edgetpu-compiler \
 && apt-get purge -y curl gnupg && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
WORKDIR /work
ENTRYPOINT ["edgetpu_compiler"]
