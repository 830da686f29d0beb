#!/usr/bin/env bash
# Build step (lib/ui/assets/meson.build): install the pinned nhsuk-frontend
# from the npm registry (package-lock.json, npm ci) into the build tree and
# copy its stylesheet and icons next to rasd's own, for `meson install` to
# put under share/rasd/ui.  The pages never load anything from a CDN.
#   copy-assets.sh SRCDIR WORKDIR OUTPUT...
set -euo pipefail
src=$1 work=$2; shift 2
mkdir -p "$work"
if ! cmp -s "$src/package-lock.json" "$work/package-lock.json" || [ ! -d "$work/node_modules/nhsuk-frontend" ]; then
  cp "$src/package.json" "$src/package-lock.json" "$work/"
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
dist="$work/node_modules/nhsuk-frontend/dist/nhsuk"
for out in "$@"; do
  case "$(basename "$out")" in
    nhsuk-frontend.min.css) cp "$dist/nhsuk-frontend.min.css" "$out" ;;
    favicon.svg|favicon.ico) cp "$dist/assets/images/$(basename "$out")" "$out" ;;
    rasd-ui.css) cp "$src/rasd-ui.css" "$out" ;;
    *) echo "copy-assets.sh: unknown output $out" >&2; exit 1 ;;
  esac
done
