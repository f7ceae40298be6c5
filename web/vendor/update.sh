#!/usr/bin/env bash
# Refresh the vendored browser assets from the npm registry. No CDN is used at run time: the files here
# are served by handlers/webapp.py under /static/vendor/.
#
# To update: edit the versions below (see `npm view <package> version`), run this script from anywhere,
# check the pages (`pytest tests/test_webapp.py tests/browser`), and commit web/vendor/ together.
set -euo pipefail
SWAGGER_UI=5.35.0
HLS_JS=1.7.4
TUS_JS_CLIENT=4.3.1
DASHJS=5.2.1

here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

unpack() {  # unpack <package> <version> -> directory with the package's files
  (cd "$tmp" && npm pack --silent "$1@$2" >/dev/null)
  mkdir -p "$tmp/$1"
  tar xzf "$tmp/${1//\//-}-$2.tgz" -C "$tmp/$1"
  echo "$tmp/$1/package"
}

src="$(unpack swagger-ui-dist "$SWAGGER_UI")"
cp "$src/swagger-ui-bundle.js" "$src/swagger-ui.css" "$here/"
cp "$src/LICENSE" "$here/LICENSE.swagger-ui"

src="$(unpack hls.js "$HLS_JS")"
cp "$src/dist/hls.min.js" "$here/"
cp "$src/LICENSE" "$here/LICENSE.hls.js"

src="$(unpack tus-js-client "$TUS_JS_CLIENT")"
cp "$src/dist/tus.min.js" "$here/"
cp "$src/LICENSE" "$here/LICENSE.tus-js-client"

src="$(unpack dashjs "$DASHJS")"
cp "$src/dist/modern/umd/dash.all.min.js" "$here/"
cp "$src/LICENSE.md" "$here/LICENSE.dashjs"

cat > "$here/VERSIONS" <<VERSIONS
# Vendored browser assets: package@version (from the npm registry, \`npm pack\`), then the files kept.
swagger-ui-dist@$SWAGGER_UI  swagger-ui-bundle.js swagger-ui.css  (LICENSE -> LICENSE.swagger-ui)
hls.js@$HLS_JS            dist/hls.min.js                       (LICENSE -> LICENSE.hls.js)
tus-js-client@$TUS_JS_CLIENT     dist/tus.min.js                       (LICENSE -> LICENSE.tus-js-client)
dashjs@$DASHJS            dist/modern/umd/dash.all.min.js       (LICENSE.md -> LICENSE.dashjs)
VERSIONS
echo "updated web/vendor: swagger-ui-dist@$SWAGGER_UI hls.js@$HLS_JS tus-js-client@$TUS_JS_CLIENT dashjs@$DASHJS"
