"""Print where the UI is and how to log in (after `make up`)."""

from __future__ import annotations

from init_env import ENV_FILE, read_env


def main() -> None:
    env = read_env(ENV_FILE) if ENV_FILE.exists() else {}
    host = env.get("GATEWAY_BIND") or "127.0.0.1"
    host = "127.0.0.1" if host == "0.0.0.0" else host
    url = f"http://{host}:{env.get('GATEWAY_PORT') or '3000'}{env.get('DAGSTER_WEBSERVER_PATH_PREFIX', '')}/"
    print(f"Dagster is up: {url}")
    print(f"  login: {env.get('DAGSTER_UI_USER') or 'admin'} / DAGSTER_UI_PASSWORD in .env")
    print("  exports: `make exports` copies them to ./exports; logs: `make logs`")


if __name__ == "__main__":
    main()
