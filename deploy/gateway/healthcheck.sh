#!/bin/bash
# Healthy when nginx answers its health endpoint on its loopback-only, plain-HTTP
# listener (bash's /dev/tcp: the image needs no HTTP client).
exec 3<>/dev/tcp/127.0.0.1/8081 || exit 1
printf 'GET /__gateway/health HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 4 status <&3 || exit 1
case "$status" in *" 200 "*) exit 0 ;; *) echo "unhealthy: $status"; exit 1 ;; esac
