#!/usr/bin/env bash
# An NHS-shaped RSA-2048 PKI made with the openssl CLI, independent of the project's own
# generator: Root -> SubCA (pathlen 0) -> server and client leaves, plus a foreign Root and
# a client under it (for refusals).
# Usage: bench/mkpki.sh DIR
set -euo pipefail
d=${1:?usage: mkpki.sh DIR}
mkdir -p "$d"
cd "$d"
cat > ext.cnf <<'X'
[root]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[subca]
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[server]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:BaRS-INT-X26.example.thirdparty.nhs.uk,DNS:localhost,IP:127.0.0.1
authorityKeyIdentifier=keyid
[client]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
authorityKeyIdentifier=keyid
X
# name subject issuer extension days
mk() {
  openssl genrsa -out "$1.key" 2048 2>/dev/null
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  if [ "$3" = self ]; then
    openssl x509 -req -in "$1.csr" -signkey "$1.key" -extfile ext.cnf -extensions "$4" \
      -days "$5" -sha256 -out "$1.pem" 2>/dev/null
  else
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
      -extfile ext.cnf -extensions "$4" -days "$5" -sha256 -out "$1.pem" 2>/dev/null
  fi
}
mk root "/O=nhs/OU=CA/CN=Bench PTL Root Authority" self root 3650
mk subca "/O=nhs/OU=CA/CN=Bench INT Level 1C" root subca 1825
mk server "/O=nhs/OU=Devices/CN=BaRS-INT-X26.example.thirdparty.nhs.uk" subca server 365
mk client "/O=nhs/OU=Devices/CN=int.api.service.nhs.uk" subca client 365
mk foreignroot "/O=other/CN=Foreign Root" self root 3650
mk foreign "/O=other/OU=Devices/CN=int.api.service.nhs.uk" foreignroot client 365
cat server.pem subca.pem > server-chain.pem
cat root.pem subca.pem > ca-bundle.pem
cat client.pem subca.pem > client-chain.pem
rm -f ./*.csr ./*.srl
