"""The auth service: who each request through the gateway is, and which roles the access file gives them.

    python -m platform_services.auth

The gateway (nginx ``auth_request``) asks ``GET /verify`` about every request, and passes
the answer on to the webserver: ``X-Dagster-Identity`` (signed, :mod:`platform_services.access.identity`)
and ``X-Dagster-User``, or a 401. The pages under ``/__auth/`` (login, logout, single
sign-on) are proxied here directly. Credentials, each giving an identity whose roles come
from the access file (:mod:`platform_services.access.rules`):

* local users (the htpasswd file init writes): HTTP basic auth, or the login page, which
  starts a session (:mod:`.passwords`, :mod:`.sessions`);
* API tokens, ``Authorization: Bearer dgt_...`` (:mod:`.tokens`, ``make ui-token``);
* single sign-on with OpenID Connect, when OIDC_ISSUER_URL is set (:mod:`.oidc`, :mod:`.oidc_http`).

Modules: :mod:`.settings` (the environment), :mod:`.app` (put together), :mod:`.server`
(HTTP), :mod:`.service` (credentials to identities), :mod:`.pages` (the login page),
:mod:`.live_rules` and :mod:`.watched` (files re-read as they change), :mod:`.audit` (the
JSON log), :mod:`.health` (the heartbeat file). Nothing here imports Dagster: the service
stays a small process.
"""
