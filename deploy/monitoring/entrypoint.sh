#!/bin/sh
# prometheus | alertmanager | healthcheck URL | any command.
# Alertmanager's config gets the Slack-compatible webhook when ALERT_WEBHOOK_URL is set
# (written to a file Alertmanager reads, so no URL is quoted into YAML).
set -eu
case "${1:-prometheus}" in
  prometheus)
    shift
    exec prometheus --config.file=/etc/prometheus/prometheus.yml \
      --storage.tsdb.path=/prometheus \
      --storage.tsdb.retention.time="${PROMETHEUS_RETENTION_TIME:-15d}" \
      --storage.tsdb.retention.size="${PROMETHEUS_RETENTION_SIZE:-1GB}" \
      --web.listen-address=:9090 \
      --web.external-url="${MONITORING_EXTERNAL_URL:-http://127.0.0.1:3000}/prometheus/" \
      "$@"
    ;;
  alertmanager)
    shift
    config=/etc/prometheus/alertmanager.yml
    if [ -n "${ALERT_WEBHOOK_URL:-}" ]; then
      case "$ALERT_WEBHOOK_URL" in
        http://*|https://*) ;;
        *) echo "alertmanager: ALERT_WEBHOOK_URL must be an http(s):// URL, got '$ALERT_WEBHOOK_URL' (.env)" >&2; exit 1 ;;
      esac
      printf '%s' "$ALERT_WEBHOOK_URL" > /tmp/alert_webhook_url
      config=/tmp/alertmanager.yml
      cat /etc/prometheus/alertmanager.yml - > "$config" <<'YAML'
    slack_configs:
      - api_url_file: /tmp/alert_webhook_url
        send_resolved: true
        title: '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}'
        text: '{{ range .Alerts }}{{ .Annotations.summary }} ({{ .Annotations.action }}){{ "\n" }}{{ end }}'
YAML
    else
      echo "alertmanager: ALERT_WEBHOOK_URL is not set: alerts are only logged, in 'docker compose logs metrics'"
    fi
    exec prometheus-alertmanager --config.file="$config" \
      --storage.path=/alertmanager \
      --web.listen-address=:9093 \
      --web.external-url="${MONITORING_EXTERNAL_URL:-http://127.0.0.1:3000}/alertmanager/" \
      --cluster.listen-address= \
      "$@"
    ;;
  healthcheck)
    exec curl --fail --silent --show-error --max-time 4 --output /dev/null "$2"
    ;;
  *)
    exec "$@"
    ;;
esac
