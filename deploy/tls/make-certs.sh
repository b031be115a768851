#!/usr/bin/env sh
# Certificates and secrets for deploy/compose.yaml, made once on the host before
# `docker compose up` (needs openssl). Run from the repository root:
#
#   sh deploy/tls/make-certs.sh doudi.example.gov.cn
#
# The argument is the host name people use (default localhost); the proxy's certificate names
# it. Writes deploy/tls/out/ (a private CA, the servers' and clients' certificates and keys) and
# deploy/secrets/ (random passwords and the webhook key), leaving what already exists. Both are
# git-ignored. For production, replace the CA and certificates with your organisation's (the
# proxy's from a CA browsers trust) and keep the secrets in your secret store: the compose file
# only names the files.
set -eu
public_host=${1:-localhost}
here=$(cd "$(dirname "$0")" && pwd)
out=$here/out
secrets=$here/../secrets
mkdir -p "$out" "$secrets"
umask 077

key() { [ -s "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
# leaf NAME CN SAN USAGE: a certificate signed by the CA.
leaf() {
  [ -s "$out/$1.crt" ] && return 0
  key "$out/$1.key"
  openssl req -new -key "$out/$1.key" -subj "/CN=$2" -out "$out/$1.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n%s\n' \
    "$4" "${3:+subjectAltName=$3}" >"$out/$1.ext"
  openssl x509 -req -in "$out/$1.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -days 825 -extfile "$out/$1.ext" -out "$out/$1.crt"
  rm -f "$out/$1.csr" "$out/$1.ext"
}

if [ ! -s "$out/ca.crt" ]; then
  key "$out/ca.key"
  openssl req -x509 -new -key "$out/ca.key" -days 3650 -subj "/CN=doudi deployment CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$out/ca.crt"
fi
leaf kafka kafka "DNS:kafka,DNS:localhost" serverAuth,clientAuth
leaf postgres postgres "DNS:postgres" serverAuth
leaf proxy "$public_host" "DNS:$public_host" serverAuth
leaf doudi-kafka doudi "" clientAuth
leaf kafka-admin kafka-admin "" clientAuth
# Kafka reads PEM key stores: the key and its certificate in one file.
cat "$out/kafka.key" "$out/kafka.crt" >"$out/kafka-keystore.pem"
cat "$out/kafka-admin.key" "$out/kafka-admin.crt" >"$out/kafka-admin-keystore.pem"

for s in postgres_password kafka_doudi_password webhook_key; do
  [ -s "$secrets/$s" ] || openssl rand -hex 32 >"$secrets/$s"
done
# Compose mounts each file into the containers whose users (postgres, kafka, doudi) differ from
# yours: the files are readable, their folders only yours (a mount reaches the file anyway).
chmod 700 "$out" "$secrets"
chmod 644 "$out"/* "$secrets"/*
echo "certificates in $out, secrets in $secrets"
