#!/usr/bin/env bash
# Builds the drover binary and its packages:
#
#   dist/drover                      the binary (static, linux/amd64)
#   dist/drover_<version>_amd64.deb
#   dist/drover_<version>_amd64.rpm
#   dist/VERSION                     the version built, for packaging/test-deb.sh
#
# Usage: [VERSION=1.2.3] [COMMIT=abc123] bash packaging/build.sh
#
# VERSION defaults to the newest v* tag without its "v", or 0.0.0-dev;
# COMMIT to the current commit. Both are linked into the binary (see
# internal/buildinfo) and VERSION is the packages' version. With NO_BUILD=1
# the binary already in dist/drover is packaged as it is.
set -euo pipefail

cd "$(dirname "$0")/.."

NFPM="github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2"

if [[ -z "${VERSION:-}" ]]; then
	VERSION=$(git describe --tags --match 'v[0-9]*' --abbrev=0 2>/dev/null || true)
	VERSION=${VERSION#v}
	VERSION=${VERSION:-0.0.0-dev}
fi
if [[ ! "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
	echo "build.sh: VERSION=$VERSION is not a version like 1.2.3 or 1.2.3-rc.1" >&2
	exit 2
fi
if [[ -z "${COMMIT:-}" ]]; then
	COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo none)
fi
export VERSION COMMIT

mkdir -p dist
if [[ "${NO_BUILD:-}" != 1 ]]; then
	echo "build.sh: building dist/drover $VERSION ($COMMIT)"
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath \
		-ldflags "-s -w \
-X github.com/drover-dev/drover/internal/buildinfo.Version=$VERSION \
-X github.com/drover-dev/drover/internal/buildinfo.Commit=$COMMIT" \
		-o dist/drover ./cmd/drover
fi
[[ -x dist/drover ]] || { echo "build.sh: dist/drover is missing" >&2; exit 1; }

# nfpm is run at a fixed version without being added to go.mod.
for packager in deb rpm; do
	target="dist/drover_${VERSION}_amd64.$packager"
	rm -f "$target"
	go run "$NFPM" pkg --packager "$packager" --config packaging/nfpm.yaml --target "$target"
done
echo "$VERSION" >dist/VERSION
echo "build.sh: built dist/drover, dist/drover_${VERSION}_amd64.deb and dist/drover_${VERSION}_amd64.rpm"
