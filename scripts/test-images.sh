#!/usr/bin/env bash
# Builds the local container images the tests use (nothing can be pulled on CI machines):
#   localhost/monkeyci-test/busybox  a busybox-static rootfs: /bin/sh and the usual tools
#   localhost/monkeyci-test/noshell  no /bin/sh at all
# Needs podman and busybox-static; does nothing (and says so) without podman. Where a docker
# daemon answers, the same images are imported into docker too.
set -euo pipefail
if ! command -v podman >/dev/null; then
    echo "scripts/test-images.sh: podman is not installed; skipping the test images" >&2
    exit 0
fi
busybox=$(command -v busybox || true)
if [ -z "$busybox" ]; then
    echo "scripts/test-images.sh: busybox is not installed (apt-get install busybox-static)" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/busybox/bin" "$work/busybox/tmp" "$work/noshell/bin"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$work/busybox/bin/$applet"
done
cp "$busybox" "$work/busybox/bin/busybox"
cp "$busybox" "$work/noshell/bin/busybox"
docker_works=false
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    docker_works=true
fi
for image in busybox noshell; do
    tar -C "$work/$image" -cf "$work/$image.tar" .
    podman import -q "$work/$image.tar" "localhost/monkeyci-test/$image:latest" >/dev/null
    if $docker_works; then
        docker import "$work/$image.tar" "localhost/monkeyci-test/$image:latest" >/dev/null
    fi
done
echo "test images: localhost/monkeyci-test/busybox, localhost/monkeyci-test/noshell (podman$($docker_works && echo ", docker"))"
