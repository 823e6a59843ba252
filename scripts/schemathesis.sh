#!/usr/bin/env bash
# Property-based run of the NHS BaRS OpenAPI spec against a running receiver, over mutual
# TLS with a client certificate the receiver admits.
#
#   scripts/schemathesis.sh --spec SPEC --cert CERT --key KEY --ca CA [options] [-- ARGS...]
#
#   --spec FILE      the BaRS OpenAPI spec, e.g. booking-and-referral-1.4.0.yaml from
#                    NHSDigital/booking-and-referral-fhir-api specification/ (its schemas1.4.0/
#                    and examples1.4.0/ beside it, so that its references resolve)
#   --cert FILE      client certificate (PEM; the leaf, then its SubCA)
#   --key FILE       its private key (PEM, unencrypted)
#   --ca FILE        CA bundle that issued the receiver's server certificate
#   --url URL        the receiver's base URL (default https://127.0.0.1:8443, `serve --dev`)
#   --target TOKEN   the service addressed, system|value, sent as NHSD-Target-Identifier on
#                    every request (default https://fhir.nhs.uk/Id/dos-service-id|2000072489);
#                    --target none leaves the header to the generator
#   --report-dir DIR where the JUnit and NDJSON reports go (default schemathesis-report)
#   -- ARGS          passed on to `schemathesis run` (e.g. --max-examples 20, --seed 1)
#
# The spec also describes the proxy's own endpoints (/DocumentReference, /HealthcareService,
# /Endpoint), which are not receiver endpoints (a receiver answers them 404): they are left
# out. The spec's bearer-token security is between senders and the proxy, which never
# passes `Authorization` on, so the `ignored_auth` check is left out too.
#
# `serve --dev` runs the inbox handler, which implements $process-message only: every other
# interaction answers 501 REC_NOT_IMPLEMENTED, which the not_a_server_error check counts. To
# reach every interaction, run the receiver with [handler] kind = "forward" in front of
# scripts/spec-upstream.py, a stand-in system answering with the spec's own examples.
#
# Needs schemathesis 4 (`pip install schemathesis`), or the command in $SCHEMATHESIS.
# Every other check runs; a server error or a response outside the spec fails the run (exit 1).
# Run it against a development or test receiver only: it sends thousands of requests,
# messages included.
set -euo pipefail

usage() { sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 64; }

spec= cert= key= ca= url=https://127.0.0.1:8443
target='https://fhir.nhs.uk/Id/dos-service-id|2000072489'
report_dir=schemathesis-report
while [ $# -gt 0 ]; do
  case "$1" in
    --spec) spec=$2; shift 2 ;;
    --cert) cert=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --ca) ca=$2; shift 2 ;;
    --url) url=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    --report-dir) report_dir=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done
for f in spec cert key ca; do
  if [ -z "${!f}" ]; then echo "--$f is required" >&2; usage; fi
  if [ ! -r "${!f}" ]; then echo "--$f ${!f}: not a readable file" >&2; exit 64; fi
done

headers=()
if [ "$target" != none ]; then
  system=${target%%|*} value=${target#*|}
  if [ "$system" = "$target" ] || [ -z "$system" ] || [ -z "$value" ]; then
    echo "--target must be system|value" >&2; exit 64
  fi
  encoded=$(printf '{"system":"%s","value":"%s"}' "$system" "$value" | base64 | tr -d '\n')
  headers+=(--header "NHSD-Target-Identifier: $encoded")
fi

read -r -a st <<<"${SCHEMATHESIS:-schemathesis}"
exec "${st[@]}" run "$spec" \
  --url "$url" \
  --request-cert "$cert" --request-cert-key "$key" --tls-verify "$ca" \
  "${headers[@]}" \
  --checks all --exclude-checks ignored_auth \
  --exclude-path-regex '^/(DocumentReference|HealthcareService|Endpoint)' \
  --workers 2 \
  --report junit,ndjson --report-dir "$report_dir" \
  "$@"
