# Push Ferry's images to a registry and join them under one multi-arch tag.
# Wrapped by nix/publish.nix (`nix run .#publish`), which puts skopeo, jq,
# gzip and coreutils on PATH and sets FERRY_PUBLISH_IMAGES and FERRY_PUBLISH_DEFAULT_TAG.
#
# FERRY_PUBLISH_IMAGES has one line per image: "ARCH OCI-ARCHITECTURE VARIANT
# ARCHIVE" (VARIANT "-" for none; ARCHIVE a docker-archive from dockerTools).

usage() {
  cat <<USAGE
usage: ${0##*/} [--insecure] [--also-tag TAG]... [--digest-file FILE] REPOSITORY [TAG]

Pushes each image to REPOSITORY by its digest (untagged), then a multi-arch
index listing them with their platforms as REPOSITORY:TAG, so that
\`docker pull REPOSITORY:TAG\` picks the image for the machine's architecture.
Log in first with \`skopeo login REGISTRY\`. Pushing the same images again
changes nothing: the digests depend only on the images.

  REPOSITORY          e.g. ghcr.io/OWNER/ferry (or env FERRY_PUBLISH_REPOSITORY)
  TAG                 default: the crate version (or env FERRY_PUBLISH_TAG)
  --also-tag TAG      push the multi-arch index under TAG as well (e.g. latest)
  --digest-file FILE  write the index's digest (sha256:…) to FILE, e.g. to sign it
  --insecure          plain HTTP or unverified TLS (a local test registry)
USAGE
}

repository="${FERRY_PUBLISH_REPOSITORY:-}"
tag="${FERRY_PUBLISH_TAG:-}"
tls_verify=true
also_tags=()
digest_file=""

positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --insecure) tls_verify=false ;;
    --also-tag)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      also_tags+=("$2")
      shift
      ;;
    --digest-file)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      digest_file="$2"
      shift
      ;;
    --) shift; positional+=("$@"); break ;;
    -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    *) positional+=("$1") ;;
  esac
  shift
done
if [ ${#positional[@]} -gt 2 ]; then usage >&2; exit 2; fi
if [ ${#positional[@]} -ge 1 ]; then repository="${positional[0]}"; fi
if [ ${#positional[@]} -ge 2 ]; then tag="${positional[1]}"; fi
tag="${tag:-${FERRY_PUBLISH_DEFAULT_TAG:-}}"
repository="${repository#docker://}"
if [ -z "$repository" ] || [ -z "$tag" ]; then
  echo "error: name a repository (argument or FERRY_PUBLISH_REPOSITORY) and a tag" >&2
  usage >&2
  exit 2
fi
if [ -z "${FERRY_PUBLISH_IMAGES:-}" ]; then
  echo "error: FERRY_PUBLISH_IMAGES is empty: run this through \`nix run .#publish\`," >&2
  echo "       or name prebuilt images in it for \`nix run .#publish-prebuilt\`" >&2
  exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# skopeo's dir: layout of an image list: the list as manifest.json, each
# image's manifest as DIGEST.manifest.json, blobs by digest.
multi="$work/multi-arch"
mkdir -p "$multi"
entries="$work/entries.jsonl"
: >"$entries"

# 1. Each architecture: to a dir: layout in Docker's image format (v2 schema 2)
#    with gzipped layers, so its digest is known, then to the registry by that
#    digest, untagged: only the index below carries tags. Not OCI: the OCI image
#    config has no HEALTHCHECK, and skopeo drops it when converting.
while read -r arch architecture variant archive; do
  [ -n "$arch" ] || continue
  platform="linux/$architecture"
  if [ "$variant" != "-" ]; then platform="$platform/$variant"; fi
  echo "==> $arch ($platform): $archive"
  # dockerTools' buildLayeredImage gzips the archive; not every skopeo
  # release reads a compressed docker-archive, so unpack it first.
  if gzip -t "$archive" 2>/dev/null; then
    gzip -dc "$archive" >"$work/$arch.tar"
    archive="$work/$arch.tar"
  fi
  image="$work/$arch"
  skopeo copy --quiet --format v2s2 --dest-compress "docker-archive:$archive" "dir:$image"
  rm -f "$work/$arch.tar"
  image_digest="sha256:$(sha256sum "$image/manifest.json" | cut -d' ' -f1)"
  skopeo copy --quiet --preserve-digests --dest-tls-verify="$tls_verify" \
    "dir:$image" "docker://$repository@$image_digest"
  echo "    pushed $repository@$image_digest"
  for blob in "$image"/*; do
    case "${blob##*/}" in manifest.json | version) ;; *) cp "$blob" "$multi/" ;; esac
  done
  cp "$image/version" "$multi/version"
  cp "$image/manifest.json" "$multi/${image_digest#sha256:}.manifest.json"
  jq -n -c --arg digest "$image_digest" --argjson size "$(stat -c %s "$image/manifest.json")" \
    --arg architecture "$architecture" --arg variant "$variant" '
    {mediaType: "application/vnd.docker.distribution.manifest.v2+json", digest: $digest, size: $size,
     platform: ({os: "linux", architecture: $architecture}
                + (if $variant == "-" then {} else {variant: $variant} end))}
  ' >>"$entries"
  rm -rf "$image"
done <<<"$FERRY_PUBLISH_IMAGES"

# 2. The multi-arch index (a Docker manifest list, to match its images), pushed
#    with --all under every tag; the images are already there, so only the
#    index itself is written.
jq -s '{schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.list.v2+json", manifests: .}' \
  "$entries" >"$multi/manifest.json"
digest="$(sha256sum "$multi/manifest.json" | cut -d' ' -f1)"

for name in "$tag" "${also_tags[@]}"; do
  skopeo copy --quiet --all --preserve-digests --dest-tls-verify="$tls_verify" \
    "dir:$multi" "docker://$repository:$name"
  echo "==> pushed $repository:$name (sha256:$digest):"
  jq -r '.manifests[] | "    \(.platform.os)/\(.platform.architecture)\(if .platform.variant then "/" + .platform.variant else "" end)  \(.digest)"' \
    "$multi/manifest.json"
done
if [ -n "$digest_file" ]; then
  echo "sha256:$digest" >"$digest_file"
fi
