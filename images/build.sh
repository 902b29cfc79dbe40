#!/usr/bin/env bash
# Builds chatmirror's container images without any public container registry, pushes them to a registry on
# loopback and records what was pushed. What CI and local stacks run; a fresh Debian bookworm machine (as root) is enough:
#
#   1. Debian packages: docker.io, docker-registry, debootstrap (apt, when missing)
#   2. dockerd: reused when it answers; else started (systemd, or in the background with --iptables=false, so the
#      host's firewall tables stay as they are: containers get no route out, published ports still work through
#      docker-proxy)
#   3. base image chatmirror/base:<key>: Debian bookworm minbase from the mirror apt already uses + Node.js 24 LTS
#      (images/base-rootfs.sh; the release and its hashes in images/node-release.sh), `docker import`ed. Cached:
#      the image itself, and its rootfs tarball under
#      $CHATMIRROR_IMAGE_CACHE/base/<key>.tar, <key> hashing the recipe and the mirrors
#   4. service image chatmirror/service:<version> from service/Dockerfile with BASE_IMAGE=chatmirror/base:<key>
#   4b. images from Debian packages on the same base, images/<name>/Dockerfile: prometheus (with promtool),
#      node-exporter, alertmanager (with amtool), haproxy, redis; labelled with the installed Debian versions
#      (images/labels.Dockerfile) and tagged chatmirror/<name>:<package version>
#   5. Debian's docker-registry on $CHATMIRROR_REGISTRY (127.0.0.1:5000), storage in the cache dir; every image
#      pushed
#   6. images/digests.json (digests, references, sizes, Debian versions) and CycloneDX SBOMs via images/record.ts:
#      images/sbom.cdx.json for the service (npm production dependencies, Debian packages, Node.js) and
#      images/sbom-<name>.cdx.json for each Debian-packaged image (its Debian packages, Node.js)
#
# dockerd and the registry are left running for the tests and stacks that pull from it.
#
# Environment:
#   CHATMIRROR_IMAGE_CACHE    cache directory (default /var/cache/chatmirror)
#   CHATMIRROR_REGISTRY       registry address, loopback only (default 127.0.0.1:5000)
#   CHATMIRROR_IMAGE_DIGESTS  where to write the digests (default images/digests.json)
#   CHATMIRROR_BASE_REBUILD=1 rebuild the base even when cached (to pick up new Debian security updates; the
#                             Debian-packaged images are then rebuilt too, with apt's current versions)
#   CHATMIRROR_DEBIAN_MIRROR, CHATMIRROR_DEBIAN_SECURITY_MIRROR  override the mirrors read from apt's sources
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CHATMIRROR_IMAGE_CACHE:-/var/cache/chatmirror}
registry=${CHATMIRROR_REGISTRY:-127.0.0.1:5000}
digests_file=${CHATMIRROR_IMAGE_DIGESTS:-$repo/images/digests.json}
logs=/var/log/chatmirror
started=$SECONDS
mkdir -p "$cache"

log() { printf '[images %3ds] %s\n' "$((SECONDS - started))" "$*" >&2; }
die() { printf 'images/build.sh: %s\n' "$*" >&2; exit 1; }

case "$registry" in
  127.*:* | localhost:*) ;;
  *) die "CHATMIRROR_REGISTRY must be a loopback address with a port (got $registry): nothing here is served beyond this machine" ;;
esac

# ---- 1. packages ----------------------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "needs root to install ${missing[*]}"
  log "apt-get install ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >"$cache/apt.log" 2>&1 ||
    { tail -n 20 "$cache/apt.log" >&2; die "apt-get install ${missing[*]} failed (log: $cache/apt.log)"; }
  # Under systemd the package starts its own registry on *:5000 with Debian's default config; this script runs
  # its own on loopback instead.
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi
# Debian's CLI, which matches its daemon; another `docker` earlier on PATH may be a newer client that insists on
# buildx for builds.
docker=/usr/bin/docker
[ -x "$docker" ] || docker=$(command -v docker) || die "no docker CLI after installing docker.io"

# ---- 2. dockerd -----------------------------------------------------------------------------------------------
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
  log "$what is up"
}
if ! "$docker" info >/dev/null 2>&1; then
  mkdir -p "$logs"
  if [ -d /run/systemd/system ]; then
    log "starting docker.service"
    systemctl start docker
  else
    log "starting dockerd (log: $logs/dockerd.log)"
    setsid dockerd --iptables=false --ip-forward=false >>"$logs/dockerd.log" 2>&1 </dev/null &
  fi
  wait_for 60 dockerd "$docker" info || { tail -n 20 "$logs/dockerd.log" >&2 || true; die "dockerd did not start"; }
fi

# ---- 3. base image --------------------------------------------------------------------------------------------
# The first enabled Debian source (deb822 .sources, then one-line .list) whose suites include $1.
debian_mirror_for() {
  local suite=$1 file
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    awk -v want="$suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " want " ") && uri != "") {
          print uri; found = 1; exit
        }
        types = ""; suites = ""; uri = ""; enabled = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
      /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
      /^URIs:/ { sub(/^URIs:[ \t]*/, ""); split($0, u, /[ \t]+/); uri = u[1] }
      /^Enabled:/ { sub(/^Enabled:[ \t]*/, ""); enabled = tolower($0) }
      END { if (!found) flush() }' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    awk -v want="$suite" '$1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == want) { print $i; exit } }' "$file"
  done
}
mirror=${CHATMIRROR_DEBIAN_MIRROR:-$(debian_mirror_for bookworm | head -n1)}
security_mirror=${CHATMIRROR_DEBIAN_SECURITY_MIRROR:-$(debian_mirror_for bookworm-security | head -n1)}
[ -n "$mirror" ] || die "no Debian bookworm source in /etc/apt/sources.list{,.d}; set CHATMIRROR_DEBIAN_MIRROR"

key=$(printf '%s\n' "$(sha256sum "$repo/images/base-rootfs.sh" "$repo/images/node-release.sh")" "$mirror" "$security_mirror" "$(uname -m)" |
  sha256sum | cut -c1-16)
base=chatmirror/base:$key
node_version=$(bash -c 'source "$1" && echo "$NODE_VERSION"' _ "$repo/images/node-release.sh")
base_tar=$cache/base/$key.tar
if [ "${CHATMIRROR_BASE_REBUILD:-}" = 1 ]; then
  rm -f "$base_tar"
  "$docker" image rm "$base" >/dev/null 2>&1 || true
fi
if "$docker" image inspect "$base" >/dev/null 2>&1; then
  log "base $base: cached image"
else
  if [ -f "$base_tar" ]; then
    log "base $base: importing the cached rootfs $base_tar"
  else
    [ "$(id -u)" -eq 0 ] || die "needs root to debootstrap the base rootfs"
    log "base $base: building the rootfs from $mirror"
    mkdir -p "$cache/base" "$cache/downloads"
    bash "$repo/images/base-rootfs.sh" "$base_tar" "$cache/downloads" "$mirror" "$security_mirror"
  fi
  "$docker" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' \
    --change "LABEL org.opencontainers.image.description=\"Debian bookworm minbase + Node.js $node_version (images/base-rootfs.sh)\"" \
    --change "LABEL org.opencontainers.image.version=\"$key\"" \
    "$base_tar" "$base" >/dev/null
fi

# ---- 4. service image -----------------------------------------------------------------------------------------
version=$(node -p 'require(process.argv[1]).version' "$repo/package.json")
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git -C "$repo" status --porcelain 2>/dev/null)" ]; then
  revision="$revision-dirty"
fi
source_url=$(git -C "$repo" remote get-url origin 2>/dev/null || echo unknown)
# The commit's time (or SOURCE_DATE_EPOCH) rather than the clock: rebuilding unchanged sources then reuses every
# cached layer, labels included, and gives the same digest instead of moving the tag for nothing.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
service=chatmirror/service:$version
log "building $service on $base"
build_args=(
  --build-arg "BASE_IMAGE=$base"
  --build-arg "NPM_CONFIG_REGISTRY=$(npm config get registry)"
  --build-arg "VERSION=$version"
  --build-arg "REVISION=$revision"
  --build-arg "CREATED=$created"
  --build-arg "SOURCE=$source_url"
)
for proxy in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
  [ -z "${!proxy:-}" ] || build_args+=(--build-arg "$proxy=${!proxy}")
done
# The build context, streamed as a tar: the files /.dockerignore allows (the same allow-list), plus the CA bundle
# this machine's npm trusts, when it trusts one beyond Node's own (an egress proxy that re-signs TLS, as in CI).
# Only the deps and build stages read build-extra-ca.pem; nothing from them but node_modules and the compiled
# JavaScript reaches the image.
extra_ca=${NODE_EXTRA_CA_CERTS:-}
if [ -z "$extra_ca" ]; then
  extra_ca=$(npm config get cafile 2>/dev/null || true)
  case "$extra_ca" in null | undefined) extra_ca= ;; esac
fi
context_extra=$(mktemp -d)
trap 'rm -rf "$context_extra"' EXIT
extra_files=()
if [ -n "$extra_ca" ] && [ -f "$extra_ca" ]; then
  cp "$extra_ca" "$context_extra/build-extra-ca.pem"
  extra_files=(-C "$context_extra" build-extra-ca.pem)
  log "the build trusts $extra_ca for npm"
fi
# onnxruntime's C API headers for the service's native binding, as the module zip c-api-headers.sh verified
# (it is served by the Go module proxy, which the build's apt and npm do not need; the image build checks the
# zip's hash again before it unzips it).
cp "$(bash "$repo/service/native/c-api-headers.sh" --zip)" "$context_extra/onnxruntime_go.zip" ||
  die "could not fetch onnxruntime's C API headers (service/native/c-api-headers.sh)"
extra_files+=(-C "$context_extra" onnxruntime_go.zip)
# RUN steps share the host's network: npm ci reaches the registry the way this machine does, and dockerd needs
# no NAT rules for it. A binding built on this machine (service/native/build) stays out: the image builds its own.
tar -c -C "$repo" --exclude=service/native/build package.json package-lock.json tsconfig.json service \
  test/fixtures/models/tiny-llama images/healthcheck.mjs "${extra_files[@]}" |
  DOCKER_BUILDKIT=0 "$docker" build --force-rm --network host -f service/Dockerfile "${build_args[@]}" -t "$service" - \
    >"$cache/service-build.log" 2>&1 || {
  tail -n 40 "$cache/service-build.log" >&2
  die "docker build failed (full log: $cache/service-build.log)"
}
size=$("$docker" image inspect --format '{{.Size}}' "$service")
log "built $service ($((size / 1000000)) MB)"

# ---- 4b. Debian-packaged images -------------------------------------------------------------------------------
# images/<name>/Dockerfile on the same base: a Debian package installed with apt from the mirror (RUN steps share
# the host's network, as above), hardened like the service (numeric non-root user, read-only root, HEALTHCHECK).
# Then images/labels.Dockerfile adds the labels that need what the first build installed: the Debian version of
# each package its io.chatmirror.debian.install label names, read back with dpkg-query in the image. Tagged with the
# main package's version (tag-safe: epoch dropped, + and ~ as _). The revision and time are those of the last
# commit touching the image's directory, so that commits elsewhere do not move these images' digests; both steps
# come from the classic builder's cache when nothing changed.
debian_images=(prometheus node-exporter alertmanager haproxy redis)
declare -A debian_image_tag=()
for name in "${debian_images[@]}"; do
  dir=$repo/images/$name
  [ -f "$dir/Dockerfile" ] || die "no $dir/Dockerfile"
  unlabelled=chatmirror/$name:unlabelled
  log "building chatmirror/$name on $base"
  proxy_args=()
  for proxy in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [ -z "${!proxy:-}" ] || proxy_args+=(--build-arg "$proxy=${!proxy}")
  done
  tar -c -C "$dir" . |
    DOCKER_BUILDKIT=0 "$docker" build --force-rm --network host --build-arg "BASE_IMAGE=$base" "${proxy_args[@]}" \
      -t "$unlabelled" - >"$cache/$name-build.log" 2>&1 || {
    tail -n 40 "$cache/$name-build.log" >&2
    die "docker build of images/$name failed (full log: $cache/$name-build.log)"
  }
  install=$("$docker" image inspect --format '{{index .Config.Labels "io.chatmirror.debian.install"}}' "$unlabelled")
  [ -n "$install" ] || die "images/$name/Dockerfile has no io.chatmirror.debian.install label"
  # shellcheck disable=SC2086 # $install is a list of package names
  packages=$("$docker" run --rm --network none --entrypoint dpkg-query "$unlabelled" \
    -W -f '${Package}=${Version} ' $install) || die "dpkg-query in $unlabelled failed"
  packages=${packages% }
  main=${install%% *}
  package_version=$(tr ' ' '\n' <<<"$packages" | sed -n "s/^$main=//p")
  [ -n "$package_version" ] || die "$main is not installed in $unlabelled"
  tag=${package_version#*:}
  tag=${tag//[+~]/_}
  image_revision=$(git -C "$repo" log -1 --format=%H -- "images/$name" images/labels.Dockerfile 2>/dev/null || true)
  [ -n "$image_revision" ] || image_revision=$revision
  if [ -n "$(git -C "$repo" status --porcelain -- "images/$name" images/labels.Dockerfile 2>/dev/null)" ]; then
    image_revision="${image_revision%-dirty}-dirty"
  fi
  image_epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct -- "images/$name" images/labels.Dockerfile 2>/dev/null || true)}
  image_created=$(date -u -d "@${image_epoch:-$epoch}" +%Y-%m-%dT%H:%M:%SZ)
  DOCKER_BUILDKIT=0 "$docker" build --force-rm \
    --build-arg "IMAGE=$unlabelled" --build-arg "VERSION=$package_version" --build-arg "PACKAGES=$packages" \
    --build-arg "REVISION=$image_revision" --build-arg "CREATED=$image_created" --build-arg "SOURCE=$source_url" \
    --build-arg "BASE_IMAGE=$base" -t "chatmirror/$name:$tag" - <"$repo/images/labels.Dockerfile" \
    >>"$cache/$name-build.log" 2>&1 || {
    tail -n 20 "$cache/$name-build.log" >&2
    die "labelling chatmirror/$name failed (full log: $cache/$name-build.log)"
  }
  debian_image_tag[$name]=$tag
  size=$("$docker" image inspect --format '{{.Size}}' "chatmirror/$name:$tag")
  log "built chatmirror/$name:$tag ($packages; $((size / 1000000)) MB)"
done

# ---- 5. registry ----------------------------------------------------------------------------------------------
registry_up() { node -e 'fetch(`http://${process.argv[1]}/v2/`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$registry"; }
if ! registry_up; then
  mkdir -p "$cache/registry/data" "$logs"
  cat >"$cache/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $cache/registry/data
  delete:
    enabled: true
http:
  addr: $registry
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  log "starting docker-registry on $registry (log: $logs/registry.log)"
  setsid docker-registry serve "$cache/registry/config.yml" >>"$logs/registry.log" 2>&1 </dev/null &
  wait_for 30 "registry $registry" registry_up || { tail -n 20 "$logs/registry.log" >&2; die "docker-registry did not start"; }
fi

push() { # push LOCAL_IMAGE → REGISTRY/LOCAL_IMAGE
  "$docker" tag "$1" "$registry/$1"
  "$docker" push "$registry/$1" >"$cache/push.log" 2>&1 || { tail -n 20 "$cache/push.log" >&2; die "docker push $registry/$1 failed"; }
  log "pushed $registry/$1"
}
push "$base"
push "$service"
for name in "${debian_images[@]}"; do
  push "chatmirror/$name:${debian_image_tag[$name]}"
done

# ---- 6. digests and SBOM --------------------------------------------------------------------------------------
if [ ! -x "$repo/node_modules/.bin/tsx" ]; then
  log "npm ci (for tsx, which runs images/record.ts)"
  (cd "$repo" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund >/dev/null)
fi
record_args=()
for name in "${debian_images[@]}"; do
  record_args+=(--image "$name=chatmirror/$name:${debian_image_tag[$name]}")
done
DOCKER="$docker" "$repo/node_modules/.bin/tsx" "$repo/images/record.ts" \
  --registry "$registry" --service "$service" --base "$base" --revision "$revision" "${record_args[@]}" \
  --out "$digests_file" --sbom "$(dirname "$digests_file")/sbom.cdx.json"
log "done in $((SECONDS - started)) s"
