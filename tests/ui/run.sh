#!/usr/bin/env bash
# tests/ui/run.sh: the clinicians' pages end to end, as a meson test.
#
#   run.sh BUILD_ROOT SOURCE_ROOT
#
# A fresh database in scripts/test's private cluster, the fake e-RS (the
# sandbox's referrals, stateful, checking rasd's signed JWT), a real OpenID
# Connect provider with CIS2-like claims (tests/ui/provider.mjs, npm
# oidc-provider) and rasd with [ui] over HTTPS on 127.0.0.1.  Then
# tests/ui/browser.mjs drives Debian's chromium headless through
# puppeteer-core: the sign-in failures (expired ID token, wrong audience,
# unknown clinician, wrong role), a clinician's sign-in, the worklist, a
# referral, a return with edited advice, axe-core on every page, and
# screenshots in BUILD_ROOT/ui-screenshots/.  Last, the database and the
# fake e-RS are checked: the decision is the clinician's, in the audit
# trail, recorded on e-RS as an A028, and a `rasctl decide` of the same
# decision on a twin referral wrote the same rows.
#
# The npm packages (tests/ui/package-lock.json) are installed with npm ci
# into a cache directory, never into the source tree.
set -euo pipefail
build=$1
root=$2
here="$root/tests/ui"
RASCTL="$build/daemon/rasctl"
RASD="$build/daemon/rasd"

fail() { echo "FAIL: $*" >&2; exit 1; }
command -v node >/dev/null || fail "node is not installed (Debian package nodejs)"
command -v npm >/dev/null || fail "npm is not installed (Debian package npm)"
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is not installed (Debian package chromium)"
[ -n "${RAS_TEST_PGHOST:-}" ] || fail "RAS_TEST_PGHOST is not set: run the tests with scripts/test"

# ---- npm packages, pinned by package-lock.json -----------------------------
cache="${RAS_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rasd}/ui-tests"
want=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ ! -d "$cache/node_modules" ] || [ "$(cat "$cache/.lock.sha256" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$cache"
  cp "$here/package.json" "$here/package-lock.json" "$cache/"
  echo "npm ci: the pinned test packages into $cache"
  (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>"$cache/npm.log") \
    || { cat "$cache/npm.log" >&2; fail "npm ci of tests/ui failed (is the npm registry reachable?)"; }
  echo "$want" > "$cache/.lock.sha256"
fi
# ES modules resolve packages next to the script: run copies in the cache.
cp "$here/provider.mjs" "$here/browser.mjs" "$cache/"

# ---- a private world --------------------------------------------------------
T=$(mktemp -d "${RAS_TEST_TMP:-/tmp}/rasd-ui.XXXXXX")
chmod 755 "$T"
mkdir -p "$T/secrets" "$T/mappings"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${RAS_UI_KEEP:-}" = "" ]; then rm -rf "$T"; else echo "kept $T"; fi
}
trap cleanup EXIT

PGUSER=${RAS_TEST_PGUSER:-postgres}
DB="t_ui_$$"
psql -h "$RAS_TEST_PGHOST" -U "$PGUSER" -d postgres -qAtX -c "CREATE DATABASE $DB" >/dev/null
export PGHOST="$RAS_TEST_PGHOST" PGDATABASE="$DB" PGUSER
"$RASCTL" migrate >/dev/null
q() { psql -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
wait_for() {  # SQL N SECONDS
  local n=0
  for _ in $(seq $(( $3 * 10 ))); do
    n=$(q "$1"); [ "${n:-0}" -ge "$2" ] && return 0; sleep 0.1
  done
  echo "timed out waiting for $2 of: $1 (have $n)" >&2; tail -n 30 "$T/rasd.log" >&2; return 1
}

# Keys: rasd's e-RS signing key, rasd's CIS2 client key (private_key_jwt)
# and the pages' TLS certificate.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/secrets/ers-key.pem" 2>/dev/null
openssl pkey -in "$T/secrets/ers-key.pem" -pubout -out "$T/ers-public.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/secrets/cis2-client-key.pem" 2>/dev/null
openssl pkey -in "$T/secrets/cis2-client-key.pem" -pubout -out "$T/cis2-client-public.pem" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$T/secrets/ui-tls-key.pem" -out "$T/ui-tls.pem" 2>/dev/null
cp -r "$root/mappings/." "$T/mappings/"

# A free port for the pages (the redirect URL must name it before rasd starts).
UI_PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
REDIRECT="https://127.0.0.1:$UI_PORT/callback"

"$build/tests/fake-ers" --port 0 --port-file "$T/ers.port" --public-key "$T/ers-public.pem" \
  --require-auth --stateful --exit-with $$ > "$T/fake-ers.out" 2> "$T/fake-ers.log" &
PIDS+=($!)
node "$cache/provider.mjs" --client-key "$T/cis2-client-public.pem" --redirect "$REDIRECT" \
  --issuer-file "$T/issuer" --exit-with $$ < /dev/null > /dev/null 2> "$T/provider.log" &
PIDS+=($!)
ERS_PID=${PIDS[0]}
for _ in $(seq 100); do [ -s "$T/ers.port" ] && [ -s "$T/issuer" ] && break; sleep 0.1; done
[ -s "$T/issuer" ] || { cat "$T/provider.log" >&2; fail "the OpenID Connect provider did not start"; }
ERS_PORT=$(cat "$T/ers.port")
ISSUER=$(cat "$T/issuer")

cat > "$T/rasd.conf" <<CONF
[general]
instance = ui-test
mappings = $T/mappings
[database]
conninfo = host=$RAS_TEST_PGHOST dbname=$DB user=$PGUSER
[daemon]
stage_interval = 1
[ers]
base_url = http://127.0.0.1:$ERS_PORT/referrals/FHIR
token_url = http://127.0.0.1:$ERS_PORT/oauth2/token
mode = application
api_key = ui-test-api-key
kid = ui-test-key-1
private_key = $T/secrets/ers-key.pem
service_ids = 11012=midnotts, 21013=dorset-2019
schedule = 00:00
poll_days = all
[outbox]
allow_http_loopback = yes
[ui]
enabled = yes
listen = 127.0.0.1:$UI_PORT
tls_certificate = $T/ui-tls.pem
tls_key = $T/secrets/ui-tls-key.pem
issuer = $ISSUER
client_id = rasd-ui
client_key = $T/secrets/cis2-client-key.pem
client_key_id = rasd-ui-1
redirect_url = $REDIRECT
clinician_roles = R8000
admin_roles = R8008
session_lifetime = 3600
allow_http_loopback = yes
assets = $build/lib/ui/assets
$(cat "$here/register.conf")
CONF
if [ "$(id -u)" -eq 0 ]; then chown -R nobody:nogroup "$T"; fi
chmod 600 "$T"/secrets/*
as_rasd() { if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; else "$@"; fi; }

as_rasd "$RASD" --config "$T/rasd.conf" --check-config >/dev/null || fail "rasd --check-config refused the test configuration"
# (started directly, not through the as_rasd function, so that $! is rasd)
if [ "$(id -u)" -eq 0 ]; then
  setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$RASD" --config "$T/rasd.conf" --foreground 2> "$T/rasd.log" &
else
  "$RASD" --config "$T/rasd.conf" --foreground 2> "$T/rasd.log" &
fi
PIDS+=($!)
for _ in $(seq 150); do grep -q "ready:" "$T/rasd.log" 2>/dev/null && break; sleep 0.1; done
grep -q "ui 127.0.0.1:$UI_PORT" "$T/rasd.log" || { cat "$T/rasd.log" >&2; fail "rasd did not serve the pages"; }

# e-RS: rasd polls the worklists; the referrals it cannot decide alone wait
# for a clinician (state review).
wait_for "SELECT count(*) FROM referrals WHERE state = 'review'" 2 60
# The e-RS referral the browser returns: one awaiting a decision with no red
# flag, urgency or 2WW (those are never returned).
UBRN=$(q "SELECT r.ubrn FROM referrals r JOIN current_decisions d ON d.referral_id = r.id
   WHERE r.state = 'review' AND r.ubrn IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM referrals n WHERE n.referral_key = r.referral_key AND n.version > r.version)
     AND NOT EXISTS (SELECT 1 FROM decisions x WHERE x.referral_id IN
         (SELECT id FROM referrals y WHERE y.referral_key = r.referral_key)
       AND (x.onward_target = 'two-week-wait' OR x.facts ->> 'urgent' = 'true'
            OR x.facts::text LIKE '%"stage": "safety"%'))
   ORDER BY r.ubrn LIMIT 1")
[ -n "$UBRN" ] || { q "SELECT ubrn, state, service FROM referrals" >&2; fail "no e-RS referral awaits a decision"; }
# Twins for the same-rows check: one referral stored twice under two UBRNs;
# the browser decides one, rasctl the other.
TWIN_PAGE=300000000001 TWIN_CTL=300000000002
for u in $TWIN_PAGE $TWIN_CTL; do
  sed "s/100000000301/$u/g" "$root/tests/fixtures/triage/midnotts-accept.json" > "$T/twin-$u.json"
  "$RASCTL" ingest --service midnotts "$T/twin-$u.json" >/dev/null
done
wait_for "SELECT count(*) FROM referrals WHERE ubrn IN ('$TWIN_PAGE', '$TWIN_CTL') AND state = 'review'" 2 60
echo "the browser returns $UBRN (e-RS) and $TWIN_PAGE; rasctl decides $TWIN_CTL"
# The twins' patient is restricted, as PDS would say (pds_restricted): the
# pages must mark them and never show an address.
q "UPDATE patients SET pds_restricted = true, pds_security = 'R' WHERE id IN
     (SELECT patient_id FROM referrals WHERE ubrn = '$TWIN_PAGE')" >/dev/null

# A failed e-RS outcome for the admin to requeue: the rules' return of
# 000000070020, recorded on e-RS at the first poll, parked as if e-RS had
# kept refusing it.
wait_for "SELECT count(*) FROM ers_outcomes WHERE state = 'done'" 1 60
PARKED=$(q "UPDATE ers_outcomes SET state = 'parked', error = 'parked by the ui test'
   WHERE id = (SELECT min(id) FROM ers_outcomes WHERE state = 'done') RETURNING id")

mkdir -p "$build/ui-screenshots"
node "$cache/browser.mjs" --base "https://127.0.0.1:$UI_PORT" --issuer "$ISSUER" --ubrn "$UBRN" --twin "$TWIN_PAGE" \
  --shots "$build/ui-screenshots" --axe "$cache/node_modules/axe-core/axe.min.js" \
  || { tail -n 40 "$T/rasd.log" >&2; fail "the browser test failed"; }

# The same decision on the twin, by rasctl (the register's clinician).
ADVICE="Edited in the browser: please try a course of physiotherapy first and re-refer if the pain persists."
as_rasd "$RASCTL" --config "$T/rasd.conf" decide "$TWIN_CTL" --outcome return --advice "$ADVICE" --by 555000000001 >/dev/null \
  || fail "rasctl decide $TWIN_CTL failed"

# ---- what the page decision did ------------------------------------------------
passed=0; failed=0
check() {  # NAME SQL EXPECTED
  local got
  got=$(q "$2")
  if [ "$got" = "$3" ]; then echo "ok - $1"; passed=$((passed + 1));
  else echo "not ok - $1: got [$got], want [$3]"; failed=$((failed + 1)); fi
}
check "the decision is the signed-in clinician's return, with the edited advice" \
  "SELECT d.outcome || '|' || d.decided_by || '|' || d.final || '|' || (d.reasons -> 0 ->> 'advice')
     FROM current_decisions d JOIN referrals r ON r.id = d.referral_id WHERE r.ubrn = '$UBRN'
     ORDER BY r.version DESC LIMIT 1" "return|555000000001|true|$ADVICE"
check "the referral left the worklist (decided)" \
  "SELECT state FROM referrals WHERE ubrn = '$UBRN' ORDER BY version DESC LIMIT 1" "decided"
check "the audit trail has the views and the decision, with the clinician and role" \
  "SELECT string_agg(DISTINCT kind || ':' || actor || ':' || coalesce(detail ->> 'role', ''), ',')
     FROM events WHERE ubrn = '$UBRN' AND kind LIKE 'ui-%'" \
  "ui-decision:555000000001:clinician,ui-view:555000000001:clinician"
check "the admin's requeue is audited and sent the parked e-RS outcome back to work" \
  "SELECT (SELECT count(*) FROM events WHERE kind = 'ui-requeue' AND actor = '555000000002'
            AND detail ->> 'what' = 'ers' AND detail ->> 'id' = '$PARKED') || '|' ||
          (SELECT state <> 'parked' FROM ers_outcomes WHERE id = $PARKED)" "1|true"
check "sign-ins and refusals are audited" \
  "SELECT count(*) FILTER (WHERE kind = 'ui-sign-in') > 0 AND count(*) FILTER (WHERE kind = 'ui-sign-in-refused') >= 4
     FROM events" "t"
wait_for "SELECT count(*) FROM ers_outcomes WHERE ubrn = '$UBRN' AND state = 'done'" 1 60
check "e-RS recorded the return (A028 RETURN_TO_REFERRER_WITH_ADVICE with the advice)" \
  "SELECT review_outcome || '|' || comments FROM ers_outcomes WHERE ubrn = '$UBRN' AND state = 'done'" \
  "RETURN_TO_REFERRER_WITH_ADVICE|$ADVICE"
check "rasd called A028 on the fake e-RS for it" \
  "SELECT count(*) > 0 FROM ers_calls WHERE ubrn = '$UBRN' AND endpoint = 'A028' AND status = 200" "t"
# The fake e-RS lists what it received when it stops.
kill -TERM "$ERS_PID"; wait "$ERS_PID" 2>/dev/null || true
if grep -q "request POST .*ReferralRequest/$UBRN/\$ers.recordReviewOutcome" "$T/fake-ers.log"; then
  echo "ok - the fake e-RS received the A028 for $UBRN"; passed=$((passed + 1))
else
  echo "not ok - the fake e-RS log has no A028 for $UBRN"; failed=$((failed + 1)); tail -n 5 "$T/fake-ers.log" || true
fi

# ---- a page decision and a rasctl decision write the same rows -------------------
rows() {  # UBRN: the rows a decision writes, without ids and times
  q "SELECT 'decision', d.service, d.outcome, coalesce(d.onward_target, ''), d.final::text, d.reasons::text,
            d.ruleset_version, d.decided_by
       FROM decisions d JOIN referrals r ON r.id = d.referral_id
      WHERE r.ubrn = '$1' AND d.decided_by <> 'rules'
     UNION ALL
     SELECT 'deadline', dl.kind, coalesce(dl.clause, ''), (dl.met_at IS NOT NULL)::text,
            (dl.cancelled_at IS NOT NULL)::text, '', '', ''
       FROM deadlines dl JOIN referrals r ON r.id = dl.referral_id WHERE r.ubrn = '$1'
     UNION ALL
     SELECT 'epr', p.kind, p.actor, coalesce(p.target, ''), '', '', '', ''
       FROM epr_events p JOIN referrals r ON r.id = p.referral_id WHERE r.ubrn = '$1'
     UNION ALL
     SELECT 'event', e.kind, e.actor, '', '', '', '', '' FROM events e
      WHERE e.ubrn = '$1' AND e.kind NOT LIKE 'ui-%' AND e.actor <> 'rasd'
     UNION ALL
     SELECT 'letter', o.kind, o.recipient_role, coalesce(o.recipient_ods, ''), '', '', '', ''
       FROM outbox o JOIN referrals r ON r.id = o.referral_id WHERE r.ubrn = '$1'
     ORDER BY 1, 2, 3, 4, 5, 6"
}
# the twins were triaged by the same rules: compare what each decision wrote
if diff <(rows "$TWIN_PAGE") <(rows "$TWIN_CTL") > "$T/rows.diff" && [ -n "$(rows "$TWIN_PAGE")" ]; then
  echo "ok - a page decision and rasctl decide write the same rows ($(rows "$TWIN_PAGE" | wc -l) rows)"; passed=$((passed + 1))
else
  echo "not ok - a page decision and rasctl decide differ:"; cat "$T/rasd.log" | tail -n 5; cat "$T/rows.diff"; failed=$((failed + 1))
fi

# ---- no patient data in rasd's log -------------------------------------------------
needles=$(q "SELECT string_agg(DISTINCT v, E'\n') FROM (
  SELECT nhs_number AS v FROM patients UNION SELECT family FROM patients UNION SELECT given FROM patients
  UNION SELECT birth_date::text FROM patients) x WHERE length(v) > 2")
leak=0
while IFS= read -r n; do [ -n "$n" ] && grep -qF -- "$n" "$T/rasd.log" && { echo "patient data in rasd's log: $n"; leak=1; }; done <<< "$needles"
if [ "$leak" -eq 0 ]; then echo "ok - rasd's log has no patient names, NHS numbers or birth dates"; passed=$((passed + 1));
else echo "not ok - rasd's log has patient data"; failed=$((failed + 1)); fi

echo "screenshots: $build/ui-screenshots"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
