#!/usr/bin/env bash
# Writes the seed corpus, fuzz/corpus/TARGET/seed-*, from the project's fixtures
# (tests/fixtures/nhs, config/*.toml), the header and message shapes of tests/common, and
# certificates, keys and CRLs generated here with openssl (throwaway, for fuzzing only).
# The output is committed; rerun only to change the seeds. Needs openssl and python3.
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$fuzz")"
corpus="$fuzz/corpus"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for t in headers media bundle proxy config certs crl token; do
  mkdir -p "$corpus/$t"
  rm -f "$corpus/$t"/seed-*
done

# Message bundles: the vendored NHS examples (MIT, see tests/fixtures/nhs/SOURCES.md).
n=0
for f in "$repo"/tests/fixtures/nhs/examples1.4.0/process_message/request/*.json; do
  n=$((n + 1))
  cp "$f" "$corpus/bundle/seed-nhs-$n.json"
done

# Configuration files as shipped.
for f in "$repo"/config/*.toml; do
  cp "$f" "$corpus/config/seed-$(basename "$f")"
done

python3 - "$corpus" <<'PY'
import base64, json, struct, sys, pathlib
corpus = pathlib.Path(sys.argv[1])
def write(target, name, data):
    (corpus / target / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())
def b64(value, pad=True):
    text = base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()
    return text if pad else text.rstrip("=")

target = {"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "111111111"}
org = {"resourceType": "Organization", "name": "Test sender",
       "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A1001"}]}
device = {"resourceType": "Device", "deviceName": [{"name": "tests", "type": "manufacturer-name"}],
          "version": [{"value": "1"}]}
role = {"resourceType": "PractitionerRole", "id": "1", "practitioner": {"reference": "Practitioner/1"}}
ids = ("x-request-id: 60b1b8ac-4fb0-4c7b-9e2a-8e1f7f4b3a10\n"
       "x-correlation-id: 11c3a9a5-96c4-4d26-a64d-3ec1a3a7b3f2\n")
write("headers", "all", ids
      + f"nhsd-target-identifier: {b64(target)}\n"
      + f"nhsd-end-user-organisation: {b64(org)}\n"
      + f"nhsd-requesting-software: {b64(device)}\n"
      + f"nhsd-requesting-practitioner: {b64(role)}\n")
write("headers", "unpadded", ids + f"nhsd-target-identifier: {b64(target, pad=False)}\n")
write("headers", "device-object", f"nhsd-requesting-software: {b64({'deviceName': {'name': 'x'}, 'version': {'value': '2'}})}\n")
write("headers", "ids-only", ids)
write("headers", "repeated", ids + ids)
write("headers", "not-json", "nhsd-target-identifier: " + base64.b64encode(b"not json").decode() + "\n")

for name, block in {
    "fhir-version": "accept: application/fhir+json; version=1.4.0\ncontent-type: application/fhir+json; charset=utf-8\n",
    "list-q": "accept: text/html;q=0.9, application/json;q=0.0, */*;q=0.1\ncontent-type: application/json\n",
    "wrong-version": 'accept: application/fhir+json;version="2.0.0"\ncontent-type: application/json-patch+json\n',
    "several": "accept: application/xml\naccept: application/*\ncontent-type: application/fhir+json;charset=latin1\n",
}.items():
    write("media", name, block)

# The minimal message of tests/common, and a response to it.
header = {"resourceType": "MessageHeader",
          "eventCoding": {"system": "https://fhir.nhs.uk/CodeSystem/message-events-bars", "code": "servicerequest-request"},
          "reason": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/message-reason-bars", "code": "new"}]},
          "focus": [{"reference": "urn:uuid:22222222-2222-4222-8222-222222222222"}],
          "destination": [{"endpoint": "https://fhir.nhs.uk/Id/dos-service-id|111111111"}],
          "source": {"endpoint": "https://fhir.nhs.uk/Id/dos-service-id|222222222"}}
message = {"resourceType": "Bundle", "id": "b1", "type": "message", "meta": {"versionId": "1.4.0"},
           "timestamp": "2026-01-01T00:00:00+00:00",
           "entry": [{"fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111", "resource": header},
                     {"fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
                      "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order"}}]}
write("bundle", "minimal.json", json.dumps(message))
response = json.loads(json.dumps(message))
response["entry"][0]["resource"]["eventCoding"]["code"] = "servicerequest-response"
response["entry"][0]["resource"]["response"] = {"identifier": "b0", "code": "ok"}
write("bundle", "response.json", json.dumps(response))

# PROXY v1 lines and v2 headers (IPv4, IPv6, LOCAL, a TLV, an unsupported family).
write("proxy", "v1-tcp4", b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n")
write("proxy", "v1-tcp6", b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n")
write("proxy", "v1-unknown", b"PROXY UNKNOWN\r\n")
sig = b"\r\n\r\n\x00\r\nQUIT\n"
def v2(cmd, fam, body):
    return sig + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body
v4 = bytes([192, 0, 2, 1, 198, 51, 100, 1]) + struct.pack(">HH", 56324, 443)
v6 = bytes(range(16)) + bytes(range(16, 32)) + struct.pack(">HH", 56324, 443)
write("proxy", "v2-tcp4", v2(1, 0x11, v4))
write("proxy", "v2-tcp6", v2(1, 0x21, v6))
write("proxy", "v2-local", v2(0, 0x00, b""))
write("proxy", "v2-tlv", v2(1, 0x11, v4 + b"\x02" + struct.pack(">H", 9) + b"localhost"))
write("proxy", "v2-unix", v2(1, 0x31, bytes(216)))

# API-M token endpoint answers (strings, as API-M sends them; numbers, as others do).
write("token", "apim", json.dumps({"access_token": "Sr5PGv19wTEHJdDr2wx2f7IGd0cw", "expires_in": "599",
                                   "token_type": "Bearer", "issued_at": "1650000000000"}))
write("token", "numbers", json.dumps({"access_token": "abc", "expires_in": 3600, "token_type": "bearer"}))
write("token", "refused", json.dumps({"error": "invalid_request", "error_description": "Missing or invalid client_assertion_type",
                                      "message_id": "rrt-1234"}))
PY

# Certificates, keys and CRLs: a CA, a leaf it signs, and the CA's CRL revoking the leaf.
cd "$tmp"
openssl ecparam -name prime256v1 -genkey -noout -out ca-key.sec1 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in ca-key.sec1 -out ca-key.pem
openssl req -x509 -new -key ca-key.pem -subj "/CN=Fuzz Root CA" -days 3650 -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out leaf-key.pem 2>/dev/null
openssl req -new -key leaf-key.pem -subj "/CN=receiver.example.nhs.uk/O=Fuzz" -out leaf.csr 2>/dev/null
printf 'subjectAltName=DNS:receiver.example.nhs.uk,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 365 -extfile ext \
  -out leaf.pem 2>/dev/null
mkdir -p db && : > db/index && echo 1000 > db/crlnumber
cat > ca.cnf <<CNF
[ca]
default_ca = fuzz
[fuzz]
database = db/index
crlnumber = db/crlnumber
default_md = sha256
default_crl_days = 30
CNF
openssl ca -config ca.cnf -keyfile ca-key.pem -cert ca.pem -revoke leaf.pem 2>/dev/null
openssl ca -config ca.cnf -keyfile ca-key.pem -cert ca.pem -gencrl -out crl.pem 2>/dev/null
openssl ca -config ca.cnf -keyfile ca-key.pem -cert ca.pem -gencrl -out crl2.pem 2>/dev/null

cp ca.pem "$corpus/certs/seed-ca.pem"
cat leaf.pem ca.pem > "$corpus/certs/seed-chain.pem"
openssl x509 -in leaf.pem -outform DER -out "$corpus/certs/seed-leaf.der"
cp ca-key.pem "$corpus/certs/seed-pkcs8-key.pem"
cp leaf-key.pem "$corpus/certs/seed-sec1-key.pem"
cp crl.pem "$corpus/crl/seed-crl.pem"
cat crl.pem crl2.pem > "$corpus/crl/seed-two-crls.pem"
openssl crl -in crl.pem -outform DER -out "$corpus/crl/seed-crl.der"

du -sh "$corpus"
