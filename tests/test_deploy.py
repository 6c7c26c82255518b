"""The deployment files in docs/deploy/: the Dockerfile passes hadolint, and every bot of the
compose file is a valid configuration of this code, behind the proxy that nginx.conf makes.

No container runs on the test machines: the image's start command and health check are
run against the installed wheel in tests/test_wheel.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "docs" / "deploy"
BOTS = ("bot-a", "bot-b")
SHOW_SETTINGS = """
import json
from bot.config import load_settings
s = load_settings()
print(json.dumps({
    "database": s.database_url,
    "mode": s.telegram.mode,
    "token": s.telegram.token is not None and s.telegram.webhook_secret is not None,
    "webhook": [s.telegram.webhook_listen, s.telegram.webhook_port],
    "web": s.web.listen,
    "console": [s.web.enabled, s.web.public_url, [str(n) for n in s.web.trusted_proxies]],
}))
"""


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", DEPLOY / "Dockerfile"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def settings_of(service: dict[str, Any], secrets: Path) -> dict[str, Any]:
    """What the bot makes of a compose service's environment and secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}
    env.update({key: str(value) for key, value in service["environment"].items()})
    assert env["SICHERHEITSBOT_SECRETS_DIR"] == "/run/secrets"
    env["SICHERHEITSBOT_SECRETS_DIR"] = str(secrets)
    result = subprocess.run(
        [sys.executable, "-c", SHOW_SETTINGS],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert isinstance(shown, dict)
    return shown


def test_the_compose_bots_are_valid_configs_behind_the_proxy(tmp_path: Path) -> None:
    spec = compose()
    services = spec["services"]
    # Secrets as compose mounts them: one file per secret, named like the variable.
    url = "postgresql+asyncpg://sicherheitsbot:pw@postgres/sicherheitsbot"
    values = {"SICHERHEITSBOT_TELEGRAM__TOKEN": "123:COMPOSE", "SICHERHEITSBOT_DATABASE__URL": url}
    for name in spec["secrets"]:
        (tmp_path / name).write_text(values.get(name, "s3cret"))
    nginx = (DEPLOY / "nginx.conf").read_text()

    def upstream_ports(name: str) -> set[str]:
        block = re.search(rf"upstream {name} \{{(.*?)\n\}}", nginx, re.S)
        assert block is not None, name
        return set(re.findall(r"server 127\.0\.0\.1:(\d+)", block.group(1)))

    upstream, console_upstream = (
        upstream_ports("sicherheitsbot"),
        upstream_ports("sicherheitsbot_console"),
    )
    assert "location /console/" in nginx and "proxy_pass http://sicherheitsbot_console;" in nginx
    proxy_mounts = services["proxy"]["volumes"]
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in proxy_mounts
    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    seen_ports, seen_listen = set(), set()
    for name in BOTS:
        bot = services[name]
        assert (ROOT / bot["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        assert (DEPLOY / bot["build"]["context"]).resolve() == ROOT
        # In the proxy's network namespace, nginx.conf's 127.0.0.1 upstreams reach the bots.
        assert bot["network_mode"] == "service:proxy"
        assert "bot-data:/var/lib/sicherheitsbot" in bot["volumes"]
        # No secret in the environment: every one comes from a file.
        assert not any("PASSWORD" in key or "TOKEN" in key for key in bot["environment"])
        shown = settings_of(bot, tmp_path)
        assert shown["database"] == url
        assert shown["mode"] == "webhook" and shown["token"]
        seen_ports.add(str(shown["webhook"][1]))
        seen_listen.add(shown["web"])
        # The console behind nginx on this host, whose X-Forwarded-For the bot believes.
        assert shown["console"] == [True, "https://bot.example.org", ["127.0.0.1/32"]]
    assert seen_ports == upstream and len(seen_listen) == len(BOTS)
    assert {listen.rsplit(":", 1)[1] for listen in seen_listen} == console_upstream
