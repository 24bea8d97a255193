#!/bin/sh
# Runs in the official nginx image's entrypoint after the templates are rendered.
#
# Until Let's Encrypt has issued the certificate for FERRY_SERVER_NAME, only the
# port-80 server runs (it answers the ACME challenge and the healthcheck). A
# background loop then reloads nginx every FERRY_TLS_RELOAD_SECONDS (default 6 h) so
# renewed certificates are used, and turns HTTPS on once the first certificate is
# there (`docker compose restart nginx` does it at once).
set -eu
conf=/etc/nginx/conf.d/ferry-https.conf
cert_dir="${FERRY_TLS_CERT_DIR:-/etc/letsencrypt/live/${FERRY_SERVER_NAME:-}}"
interval="${FERRY_TLS_RELOAD_SECONDS:-21600}"

have_cert() {
    [ -r "$cert_dir/fullchain.pem" ] && [ -r "$cert_dir/privkey.pem" ]
}

if [ -f "$conf" ] && ! have_cert; then
    mv "$conf" "$conf.disabled"
    echo "$0: no certificate in $cert_dir yet: HTTPS is off, port 80 answers the ACME challenge." >&2
    echo "$0: request one with certbot (docs/reverse-proxy.md), then restart nginx." >&2
fi

(
    while sleep "$interval"; do
        if [ -f "$conf.disabled" ] && have_cert; then
            mv "$conf.disabled" "$conf"
            echo "$0: certificate found: HTTPS on" >&2
        fi
        nginx -s reload || true
    done
) </dev/null &
