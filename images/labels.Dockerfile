# Second build of each Debian-packaged image (images/<name>/Dockerfile), run by images/build.sh: the same image plus
# the labels only known once the first build has installed its packages (the Debian package's version) and the
# commit it was built from. Metadata only, no new layer; with unchanged arguments the classic builder's cache
# returns the same image, so an unchanged rebuild keeps its digest.
#   docker build -f images/labels.Dockerfile --build-arg IMAGE=chatmirror/prometheus:unlabelled \
#     --build-arg VERSION=2.42.0+ds-5+deb12u1 ... -t chatmirror/prometheus:2.42.0_ds-5_deb12u1 - <images/labels.Dockerfile
ARG IMAGE
FROM ${IMAGE}
ARG VERSION=unknown
ARG PACKAGES=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
ARG BASE_IMAGE=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      io.chatmirror.debian.packages="${PACKAGES}"
