#!/usr/bin/env bash
# tests/validate/run.sh: the independent FHIR validator as a meson test.
#
#   run.sh RASCTL SOURCE_ROOT
#
# Installs the pinned npm packages of tests/validate/package.json into a
# cache directory (never into the source tree; reused while package.json is
# unchanged), renders every document kind for every service with rasctl,
# and validates those plus every golden document under tests/golden/.
set -euo pipefail
rasctl=$1
root=$2
here="$root/tests/validate"
# UK Core Patient 2.6.1 snapshot, copied from shared/reference/fhir-profile-snapshots
snapshot="$root/tests/fixtures/fhir/UKCore-Patient.snapshot.json"

command -v node >/dev/null || { echo "FAIL: node is not installed (Debian package nodejs); the FHIR validator needs it" >&2; exit 1; }
command -v npm >/dev/null || { echo "FAIL: npm is not installed (Debian package npm); the FHIR validator needs it" >&2; exit 1; }

cache="${RAS_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rasd/fhir-validate}"
stamp="$cache/.package.sha256"
want=$(sha256sum "$here/package.json" | cut -d' ' -f1)
if [ ! -d "$cache/node_modules" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$cache"
  cp "$here/package.json" "$cache/package.json"
  echo "installing the pinned validator packages into $cache"
  if ! (cd "$cache" && npm install --no-audit --no-fund --loglevel=error >/dev/null 2>"$cache/npm.log"); then
    cat "$cache/npm.log" >&2
    echo "FAIL: npm install of the FHIR validator packages failed (is the npm registry reachable?)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/rasd-validate.XXXXXX")
trap 'rm -rf "$out"' EXIT
fx="$root/tests/fixtures"
at=2026-07-20T10:00:00Z
n=0
render() {  # name args...
  local name=$1; shift
  "$rasctl" render --at "$at" --mappings "$root/mappings" "$@" > "$out/$name"
  n=$((n + 1))
}
for svc in midnotts bassetlaw-2022 dorset-2013 dorset-2019; do
  case $svc in
    midnotts) ref="$fx/r4/referral-collection-urn.json" ;;
    bassetlaw-2022) ref="$fx/r4/referral-transaction-relative.json" ;;
    *) ref="$fx/r4/referral-message.json" ;;
  esac
  for o in accept return onward; do
    render "$svc-triage-$o.json" --kind triage-outcome --service "$svc" --referral "$ref" --decision "$fx/documents/decision-$svc-$o.json"
    render "$svc-triage-$o.xml" --kind triage-outcome --service "$svc" --referral "$ref" --decision "$fx/documents/decision-$svc-$o.json" --format xml
  done
  render "$svc-discharge.json" --kind discharge-summary --service "$svc" --referral "$ref" --episode "$fx/documents/episode-discharge-full.json"
  render "$svc-discharge.xml" --kind discharge-summary --service "$svc" --referral "$ref" --episode "$fx/documents/episode-discharge-full.json" --format xml
done
render midnotts-2ww.json --kind gp-2ww-notice --service midnotts --referral "$fx/documents/referral-consultant-midnotts.json" --decision "$fx/documents/decision-midnotts-2ww.json"
render midnotts-notification.json --kind notification-letter --service midnotts --referral "$fx/documents/referral-consultant-midnotts.json" --episode "$fx/documents/episode-notification.json"
# without --decision: rasctl triages the referral itself (a recommendation to
# accept; a potential 2WW sent on with the GP told)
render midnotts-triage-rules.json --kind triage-outcome --service midnotts --referral "$fx/triage/midnotts-accept.json"
render midnotts-triage-rules.xml --kind triage-outcome --service midnotts --referral "$fx/triage/midnotts-accept.json" --format xml
render midnotts-2ww-rules.json --kind gp-2ww-notice --service midnotts --referral "$fx/triage/midnotts-2ww.json"
render bassetlaw-notification.json --kind notification-letter --service bassetlaw-2022 --referral "$fx/r4/referral-transaction-relative.json" --episode "$fx/documents/episode-notification.json"
echo "rendered $n documents"

files=("$out"/*)
if [ -d "$root/tests/golden/documents" ]; then
  while IFS= read -r -d '' f; do files+=("$f"); done < \
    <(find "$root/tests/golden/documents" \( -name '*.json' -o -name '*.xml' \) -print0 | sort -z)
fi
files+=("$root/mappings/forms/episode-summary.json")
node "$here/validate.cjs" --modules "$cache/node_modules" --profile "$snapshot" "${files[@]}"

# ITK3 messages (issue 11): FHIR STU3, every letter kind as each ITK3
# message for one service, and every golden ITK3 message.
mkdir "$out/itk3"
for fmt in gp-connect-send-document toc-outpatient-letter; do
  "$rasctl" render --at "$at" --mappings "$root/mappings" --format "$fmt" --kind triage-outcome --service midnotts --referral "$fx/r4/referral-collection-urn.json" --decision "$fx/documents/decision-midnotts-accept.json" > "$out/itk3/triage-$fmt.xml"
  "$rasctl" render --at "$at" --mappings "$root/mappings" --format "$fmt" --kind gp-2ww-notice --service midnotts --referral "$fx/documents/referral-consultant-midnotts.json" --decision "$fx/documents/decision-midnotts-2ww.json" > "$out/itk3/2ww-$fmt.xml"
  "$rasctl" render --at "$at" --mappings "$root/mappings" --format "$fmt" --kind notification-letter --service midnotts --referral "$fx/documents/referral-consultant-midnotts.json" --episode "$fx/documents/episode-notification.json" > "$out/itk3/notification-$fmt.xml"
  "$rasctl" render --at "$at" --mappings "$root/mappings" --format "$fmt" --kind discharge-summary --service bassetlaw-2022 --referral "$fx/r4/referral-transaction-relative.json" --episode "$fx/documents/episode-discharge-full.json" > "$out/itk3/discharge-$fmt.xml"
done
itk3=("$out"/itk3/*.xml "$root"/tests/golden/itk3/*.xml)
node "$here/validate-stu3.cjs" --modules "$cache/node_modules" "${itk3[@]}"
