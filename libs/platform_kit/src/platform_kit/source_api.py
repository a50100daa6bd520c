"""A typed Dagster resource for a JSONPlaceholder-compatible REST API.

Every fetch is bounded (per-request timeout, a number of attempts and a total
time budget), retried with exponential backoff on the failures that are worth
retrying (connection errors, timeouts, 5xx, 429 with ``Retry-After``), and
validated before anything downstream sees it. Failures raise
:class:`SourceApiError`, whose message names the endpoint, what was wrong and
what to check.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import dagster as dg
import requests
from pydantic import Field

#: Fields every record must carry, per endpoint, with the type they must have.
USER_FIELDS: Mapping[str, type] = {"id": int, "name": str, "username": str, "email": str}
POST_FIELDS: Mapping[str, type] = {"id": int, "userId": int, "title": str, "body": str}

#: Failures worth another attempt: the server was unreachable, too slow, or cut the body short.
_RETRIED_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

_HINT = "Check that SOURCE_API_URL ({url}) points at a JSONPlaceholder-compatible API and that the service is healthy."


class SourceApiError(Exception):
    """The source API could not be reached, or answered with unusable data."""


def _retry_after_seconds(response: requests.Response) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header (delta or HTTP date)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def validate_records(payload: Any, endpoint: str, required: Mapping[str, type], hint: str) -> list[dict[str, Any]]:
    """Return ``payload`` as a list of records, or raise a :class:`SourceApiError`.

    A usable payload is a non-empty JSON list of objects that each carry the
    ``required`` fields with the right types (``bool`` does not pass for ``int``).
    """
    if not isinstance(payload, list):
        raise SourceApiError(
            f"GET {endpoint}: expected a JSON list of records, got a JSON {type(payload).__name__}. {hint}"
        )
    if not payload:
        raise SourceApiError(
            f"GET {endpoint}: the API returned an empty list, so there is nothing to "
            f"process and the previous outputs were kept. {hint}"
        )
    for index, record in enumerate(payload):
        if not isinstance(record, dict):
            raise SourceApiError(
                f"GET {endpoint}: record #{index} is a JSON {type(record).__name__}, not an object. {hint}"
            )
        missing = [name for name in required if name not in record]
        if missing:
            raise SourceApiError(
                f"GET {endpoint}: record #{index} (id={record.get('id')!r}) is missing "
                f"required field(s) {', '.join(missing)}; it has {', '.join(sorted(record))}. "
                f"The API's schema has changed: update the pipeline or fix the API. {hint}"
            )
        for name, kind in required.items():
            value = record[name]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise SourceApiError(
                    f"GET {endpoint}: record #{index} (id={record.get('id')!r}) has field "
                    f"{name!r} = {value!r}, expected {kind.__name__}. {hint}"
                )
    return payload


class SourceApiResource(dg.ConfigurableResource):
    """Client for a JSONPlaceholder-compatible API (the stack's own sample API by default).

    Configure ``base_url`` with ``dg.EnvVar("SOURCE_API_URL")``; the public API at
    https://jsonplaceholder.typicode.com works too.
    """

    base_url: str = Field(description="Base URL of the API, e.g. http://sample_api:8080")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Connect and read timeout of one request.")
    max_attempts: int = Field(default=5, ge=1, description="Attempts per request, including the first one.")
    backoff_seconds: float = Field(default=0.5, ge=0, description="First retry delay; doubles on each retry.")
    max_backoff_seconds: float = Field(
        default=8.0, ge=0, description="Upper bound of one retry delay (Retry-After included)."
    )
    max_total_seconds: float = Field(
        default=60.0, gt=0, description="Give up when the next attempt would end after this."
    )

    def fetch_users(self) -> list[dict[str, Any]]:
        """All users, validated."""
        return self.fetch_records("/users", USER_FIELDS)

    def fetch_posts(self) -> list[dict[str, Any]]:
        """All posts, validated."""
        return self.fetch_records("/posts", POST_FIELDS)

    def fetch_records(self, path: str, required: Mapping[str, type]) -> list[dict[str, Any]]:
        """GET ``path`` and return its records, validated against ``required``."""
        response = self.get(path)
        return validate_records(self._json(response), response.url, required, self._hint())

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> requests.Response:
        """GET ``path`` with retries; return the successful (2xx) response.

        Retries connection errors, timeouts, bodies cut short, 5xx and 429 with
        exponential backoff (honouring ``Retry-After``) while attempts and the total
        time budget last. Other 4xx responses and unusable URLs fail at once.
        """
        url = f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"
        deadline = time.monotonic() + self.max_total_seconds
        problems: list[str] = []
        with requests.Session() as session:
            for attempt in range(1, self.max_attempts + 1):
                retry_after: float | None = None
                try:
                    response = session.get(url, params=params, timeout=self.timeout_seconds)
                except _RETRIED_ERRORS as exc:
                    problems.append(type(exc).__name__)
                except requests.RequestException as exc:  # e.g. a URL without http://
                    raise SourceApiError(
                        f"GET {url}: the request could not be sent ({exc}); this is not retried. {self._hint()}"
                    ) from exc
                else:
                    if response.ok:
                        return response
                    if response.status_code != 429 and response.status_code < 500:
                        raise SourceApiError(
                            f"GET {response.url}: HTTP {response.status_code} "
                            f"{response.reason}; this is not retried. {self._hint()}"
                        )
                    problems.append(f"HTTP {response.status_code}")
                    retry_after = _retry_after_seconds(response)
                if attempt == self.max_attempts:
                    break
                delay = min(
                    retry_after if retry_after is not None else self.backoff_seconds * 2 ** (attempt - 1),
                    self.max_backoff_seconds,
                )
                if time.monotonic() + delay + self.timeout_seconds > deadline:
                    problems.append("total time budget used up")
                    break
                dg.get_dagster_logger().warning(
                    f"GET {url} failed ({problems[-1]}), attempt {attempt}/"
                    f"{self.max_attempts}; retrying in {delay:.1f}s"
                )
                sleep(delay)
        raise SourceApiError(
            f"GET {url}: gave up after {len(problems)} failed attempt(s) "
            f"({', '.join(problems)}); limits: {self.max_attempts} attempts, "
            f"{self.max_total_seconds:g}s in all. {self._hint()}"
        )

    def fingerprint(self, path: str, fields: Collection[str] = ("id",)) -> str:
        """A cheap change marker for ``path``: total count plus the last record's fields.

        Uses JSONPlaceholder slicing (``_start``/``_limit``) and ``X-Total-Count`` so
        only one record is transferred, whatever the size of the collection.
        """
        head = self.get(path, params={"_limit": 1})
        total = head.headers.get("X-Total-Count")
        if total is None or not total.isdigit():
            raise SourceApiError(
                f"GET {head.url}: no X-Total-Count header, so changes cannot be detected cheaply. {self._hint()}"
            )
        if int(total) == 0:
            return "0"
        tail = self.get(path, params={"_start": int(total) - 1, "_limit": 1})
        record = validate_records(self._json(tail), tail.url, {}, self._hint())[-1]
        return f"{total}:" + ":".join(str(record.get(name)) for name in fields)

    def _json(self, response: requests.Response) -> Any:
        """The decoded JSON body of ``response``, or a :class:`SourceApiError` saying why not."""
        try:
            return response.json()
        except ValueError as exc:  # requests' JSONDecodeError subclasses ValueError
            snippet = response.text[:80].replace("\n", " ")
            raise SourceApiError(
                f"GET {response.url}: the response is not valid JSON ({exc}); content-type "
                f"{response.headers.get('Content-Type')!r}, {len(response.content)} bytes, "
                f"starting {snippet!r}. {self._hint()}"
            ) from exc

    def _hint(self) -> str:
        return _HINT.format(url=self.base_url)
