"""The login page: one small, self-contained HTML page (no script, no external resource)."""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass
from urllib.parse import quote

STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1f2328}
main{max-width:22rem;margin:10vh auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 4px #0003}
h1{font-size:1.4rem;margin:0 0 1rem}
label{display:block;margin-top:.8rem;font-weight:600}
input{box-sizing:border-box;width:100%;padding:.5rem;margin-top:.2rem;border:1px solid #8c959f;border-radius:4px;font:inherit}
button,.sso{display:block;box-sizing:border-box;width:100%;margin-top:1.2rem;padding:.6rem;border:0;border-radius:4px;
background:#4f43dd;color:#fff;font:inherit;font-weight:600;text-align:center;text-decoration:none;cursor:pointer}
.sso{background:#1f2328}
:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
.error{background:#ffebe9;border:1px solid #cf222e;padding:.6rem;border-radius:4px}
.note{background:#ddf4ff;border:1px solid #54aeff;padding:.6rem;border-radius:4px}
.or{text-align:center;margin:1.2rem 0 0;color:#57606a}
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
#: Served with every page: nothing but this page's own style, forms only to this origin, never framed.
HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: Messages the page shows for a ``?notice=`` (fixed texts: nothing from the URL is shown).
NOTICES = {"logged_out": "You are logged out.", "expired": "Your session has ended: log in again."}


@dataclass(frozen=True)
class Sso:
    """Single sign-on on this page: available, or why not."""

    available: bool
    problem: str | None = None


def login_page(
    next_path: str, *, sso: Sso | None = None, error: str | None = None, notice: str | None = None, user: str = ""
) -> bytes:
    escape = html.escape
    parts = []
    if error:
        parts.append(f'<p class="error" role="alert" id="problem">{escape(error)}</p>')
    elif notice:
        parts.append(f'<p class="note" role="status">{escape(notice)}</p>')
    described = ' aria-describedby="problem"' if error else ""
    parts.append(
        '<form method="post" action="/__auth/login">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<label for="username">User name</label>'
        f'<input id="username" name="username" autocomplete="username" required autofocus value="{escape(user)}"'
        f"{described}>"
        '<label for="password">Password</label>'
        f'<input id="password" name="password" type="password" autocomplete="current-password" required{described}>'
        '<button type="submit">Log in</button>'
        "</form>"
    )
    if sso and sso.available:
        parts.append(
            '<p class="or">or</p>'
            f'<a class="sso" href="/__auth/oidc/login?next={quote(next_path, safe="/")}">Log in with single sign-on</a>'
        )
    elif sso:
        parts.append(
            '<p class="note" role="status">Single sign-on is unavailable: '
            f"{escape(sso.problem or 'unknown reason')}. Log in with a local account, or try again later.</p>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Log in · Dagster</title><style>{STYLE}</style></head>"
        f"<body><main><h1>Log in to Dagster</h1>{''.join(parts)}</main></body></html>"
    ).encode()
