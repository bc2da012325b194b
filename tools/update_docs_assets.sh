#!/usr/bin/env bash
# Refresh the pinned assets of the docs pages (/docs: Swagger UI, /redoc: Redoc) from npm:
#   tools/update_docs_assets.sh [SWAGGER_UI_DIST_VERSION] [REDOC_VERSION]
# Exact versions only; the defaults are the versions shipped now. Copies the files, unchanged,
# into gateway/serve/assets/{swagger-ui,redoc}/ and writes their package, version and sha256
# to gateway/serve/assets/VERSIONS (tests/unit/test_docs_assets.py checks them). Needs npm.
set -euo pipefail
swagger=${1:-5.35.0}
redoc=${2:-2.5.4}
for version in "$swagger" "$redoc"; do
  [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "not an exact version: $version" >&2; exit 2; }
done
assets=$(cd "$(dirname "$0")/.." && pwd)/gateway/serve/assets
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent --json "swagger-ui-dist@$swagger" "redoc@$redoc" >packed.json)
mkdir "$work/swagger-ui" "$work/redoc"
tar -xzf "$work/swagger-ui-dist-$swagger.tgz" -C "$work/swagger-ui" --strip-components=1
tar -xzf "$work/redoc-$redoc.tgz" -C "$work/redoc" --strip-components=1

rm -rf "$assets/swagger-ui" "$assets/redoc"
mkdir -p "$assets/swagger-ui" "$assets/redoc"
# No sourcemaps and no standalone preset: the page uses Swagger UI's BaseLayout.
cp "$work"/swagger-ui/{swagger-ui-bundle.js,swagger-ui-bundle.js.LICENSE.txt,swagger-ui.css,LICENSE,NOTICE} \
  "$assets/swagger-ui/"
cp "$work"/redoc/bundles/{redoc.standalone.js,redoc.standalone.js.LICENSE.txt} "$work/redoc/LICENSE" \
  "$assets/redoc/"

integrity() { # the tarball's sha512, as the registry states it
  python3 -c 'import json, sys; print({p["name"]: p["integrity"] for p in json.load(open(sys.argv[1]))}[sys.argv[2]])' \
    "$work/packed.json" "$1"
}
cd "$assets"
{
  echo "# Written by tools/update_docs_assets.sh. package version file sha256; a line with"
  echo "# file \`-\` gives the npm tarball's integrity. Every file is copied unchanged."
  echo "swagger-ui-dist $swagger - $(integrity swagger-ui-dist)"
  for file in swagger-ui/*; do
    echo "swagger-ui-dist $swagger $file $(sha256sum "$file" | cut -d' ' -f1)"
  done
  echo "redoc $redoc - $(integrity redoc)"
  for file in redoc/*; do
    echo "redoc $redoc $file $(sha256sum "$file" | cut -d' ' -f1)"
  done
} >VERSIONS
cat VERSIONS
