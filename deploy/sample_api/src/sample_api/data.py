"""Deterministic JSONPlaceholder-style records, computed on demand.

Every record is a pure function of ``(seed, kind, id)``: its fields are drawn
from a BLAKE2b digest of that key, so nothing is stored, any size costs the
same memory, and the same knobs give byte-identical data in every process.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any

COMMENTS_PER_POST = 5

Record = dict[str, Any]

_WORDS = tuple(
    [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
        "eiusmod",
        "tempor",
        "incididunt",
        "ut",
        "labore",
        "et",
        "dolore",
        "magna",
        "aliqua",
        "enim",
        "ad",
        "minim",
        "veniam",
        "quis",
        "nostrud",
        "exercitation",
        "ullamco",
        "laboris",
        "nisi",
        "aliquip",
        "ex",
        "ea",
        "commodo",
        "consequat",
        "duis",
        "aute",
        "irure",
        "in",
        "reprehenderit",
        "voluptate",
        "velit",
        "esse",
        "cillum",
        "fugiat",
        "nulla",
        "pariatur",
        "excepteur",
        "sint",
        "occaecat",
        "cupidatat",
        "non",
        "proident",
        "sunt",
        "culpa",
        "qui",
        "officia",
        "deserunt",
        "mollit",
        "anim",
        "id",
        "est",
        "laborum",
        "quia",
        "molestiae",
        "rerum",
        "façade",
        "naïve",
        "café",
        "déjà",
        "vu",
        "über",
        "smörgåsbord",
        "東京",
    ]
)
_FIRST_NAMES = tuple(
    [
        "Leanne",
        "Ervin",
        "Clementine",
        "Patricia",
        "Chelsey",
        "Dennis",
        "Kurtis",
        "Nicholas",
        "Glenna",
        "Clementina",
        "Zoë",
        "José",
        "Björn",
        "Siobhán",
        "Renée",
        "Søren",
        "Łukasz",
        "Chloé",
        "François",
        "Aoife",
        "Mei",
        "Hiroshi",
        "Priya",
        "Ngozi",
        "Mateo",
        "Astrid",
        "Dmitri",
        "Ingrid",
        "Kwame",
        "Amélie",
        "Tomás",
        "Yuki",
    ]
)
_LAST_NAMES = tuple(
    [
        "Graham",
        "Howell",
        "Bauch",
        "Lebsack",
        "Dietrich",
        "Schulist",
        "Weissnat",
        "Runolfsdottir",
        "Reichert",
        "DuBuque",
        "Ångström",
        "Müller",
        "Núñez",
        "Dvořák",
        "Kowalski",
        "O'Connor",
        "Nakamura",
        "Okafor",
        "Larsson",
        "Fernández",
        "Østergaard",
        "Brontë",
        "Zieliński",
        "Nguyen",
        "Papadopoulos",
        "Haddad",
        "Kerr",
        "Lindqvist",
    ]
)
_TITLES = ("Mr.", "Mrs.", "Ms.", "Dr.")
_STREETS = (
    "Kulas Light",
    "Victor Plains",
    "Douglas Extension",
    "Hoeger Mall",
    "Skiles Walks",
    "Norberto Crossing",
    "Rex Trail",
    "Ellsworth Summit",
    "Dayna Park",
    "Kattie Turnpike",
    "Bahnhofstraße",
    "Rue de la Paix",
    "Calle Mayor",
    "Åsgatan",
    "Ulica Długa",
)
_CITIES = (
    "Gwenborough",
    "Wisokyburgh",
    "McKenziehaven",
    "South Elvis",
    "Roscoeview",
    "South Christy",
    "Howemouth",
    "Aliyaview",
    "Bartholomebury",
    "Lebsackbury",
    "Zürich",
    "São Paulo",
    "Kraków",
    "Malmö",
    "Reykjavík",
    "Montréal",
)
_DOMAINS = ("april.biz", "melissa.tv", "yesenia.net", "kory.org", "annie.ca", "jasper.info", "example.com")
_TLDS = ("org", "net", "com", "info", "biz", "io", "de")
_COMPANY_FORMS = ("{a}-{b}", "{a} and Sons", "{a} LLC", "{a} Group", "{a}, {b} and {c}", "{a} GmbH")
_CATCH_1 = ("Multi-layered", "Proactive", "Face to face", "Synchronised", "Configurable", "Implemented", "Switchable")
_CATCH_2 = ("client-server", "didactic", "bi-directional", "zero tolerance", "multimedia", "secondary", "impactful")
_CATCH_3 = ("neural-net", "toolset", "attitude", "moratorium", "orchestration", "framework", "throughput")
_BS_1 = ("harness", "synergize", "e-enable", "transition", "revolutionize", "aggregate", "target")
_BS_2 = ("real-time", "scalable", "cutting-edge", "end-to-end", "B2C", "magnetic", "dynamic")
_BS_3 = ("e-markets", "supply-chains", "web services", "metrics", "models", "channels", "paradigms")
_PHONE_FORMS = ("1-{a}-{b}-{c} x{d}", "{a}-{b}-{c}", "({a}){b}-{c}", "{a}.{b}.{c} x{d}", "+44 {a} {b} {c}")
_ASCII_EXTRAS = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss"})


def _ascii(text: str) -> str:
    """Fold ``text`` to lowercase ASCII letters, for usernames, emails and hosts."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_EXTRAS))
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum()).lower()


_FIRST_ASCII = tuple(_ascii(name) for name in _FIRST_NAMES)
_LAST_ASCII = tuple(_ascii(name) for name in _LAST_NAMES)
_WORD_OF_BYTE = tuple(_WORDS[value % len(_WORDS)] for value in range(256))


class _Draw:
    """Reads successive values from the 64-byte digest of ``(seed, kind, id)``."""

    def __init__(self, seed: int, kind: str, ident: int) -> None:
        self._bytes = hashlib.blake2b(f"{seed}:{kind}:{ident}".encode()).digest()  # 64 bytes
        self._pos = 0

    def byte(self) -> int:
        """Return the next byte (0-255)."""
        value = self._bytes[self._pos]
        self._pos += 1
        return value

    def number(self, modulus: int) -> int:
        """Return the next value in ``range(modulus)``, from four bytes."""
        value = int.from_bytes(self._bytes[self._pos : self._pos + 4], "big")
        self._pos += 4
        return value % modulus

    def pick(self, options: tuple[str, ...]) -> str:
        """Return one of ``options``."""
        return options[self.byte() % len(options)]

    def words(self, low: int, high: int) -> str:
        """Return ``low`` to ``high`` lorem words."""
        count = low + self.byte() % (high - low + 1)
        self._pos += count
        return " ".join(map(_WORD_OF_BYTE.__getitem__, self._bytes[self._pos - count : self._pos]))

    def text(self, max_lines: int) -> str:
        """Return one to ``max_lines`` newline-separated lines of 4 to 12 lorem words."""
        count = 1 + self.byte() % max_lines
        self._pos += count
        return "\n".join(map(_LINE_OF_BYTE.__getitem__, self._bytes[self._pos - count : self._pos]))


# A fixed pool of 256 lines that bodies are assembled from (picking lines is much faster than words).
_LINE_OF_BYTE = tuple(_Draw(0, "line", index).words(4, 12) for index in range(256))


@dataclass(frozen=True)
class Dataset:
    """The users, posts and comments defined by the size knobs and the seed."""

    users: int
    posts_per_user: int
    seed: int

    @property
    def posts(self) -> int:
        """Number of posts."""
        return self.users * self.posts_per_user

    @property
    def comments(self) -> int:
        """Number of comments."""
        return self.posts * COMMENTS_PER_POST

    def count(self, kind: str) -> int:
        """Number of records of ``kind``: "users", "posts" or "comments"."""
        return {"users": self.users, "posts": self.posts, "comments": self.comments}[kind]

    def post_ids_of_user(self, user_id: int) -> range:
        """Ids of the posts written by ``user_id`` (empty for an unknown user)."""
        if not 1 <= user_id <= self.users:
            return range(0)
        first = (user_id - 1) * self.posts_per_user + 1
        return range(first, first + self.posts_per_user)

    def comment_ids_of_post(self, post_id: int) -> range:
        """Ids of the comments on ``post_id`` (empty for an unknown post)."""
        if not 1 <= post_id <= self.posts:
            return range(0)
        first = (post_id - 1) * COMMENTS_PER_POST + 1
        return range(first, first + COMMENTS_PER_POST)

    def user(self, user_id: int) -> Record:
        """The user with id ``user_id``."""
        draw = _Draw(self.seed, "user", user_id)
        first_index = draw.byte() % len(_FIRST_NAMES)
        last_index = draw.byte() % len(_LAST_NAMES)
        first, last = _FIRST_NAMES[first_index], _LAST_NAMES[last_index]
        handle = f"{_FIRST_ASCII[first_index]}.{_LAST_ASCII[last_index]}{user_id}"
        name = f"{first} {last}" if draw.byte() % 8 else f"{draw.pick(_TITLES)} {first} {last}"
        zipcode = f"{draw.number(100000):05d}"
        if draw.byte() % 2:
            zipcode += f"-{draw.number(10000):04d}"
        lat = (draw.number(1_800_001) - 900_000) / 10_000
        lng = (draw.number(3_600_001) - 1_800_000) / 10_000
        phone = draw.pick(_PHONE_FORMS).format(
            a=f"{draw.number(1000):03d}",
            b=f"{draw.number(1000):03d}",
            c=f"{draw.number(10000):04d}",
            d=f"{draw.number(100000):05d}",
        )
        company_parts = {key: draw.pick(_LAST_NAMES) for key in "abc"}
        return {
            "id": user_id,
            "name": name,
            "username": handle,
            "email": f"{handle}@{draw.pick(_DOMAINS)}",
            "address": {
                "street": draw.pick(_STREETS),
                "suite": f"{draw.pick(('Apt.', 'Suite'))} {1 + draw.number(999)}",
                "city": draw.pick(_CITIES),
                "zipcode": zipcode,
                "geo": {"lat": f"{lat:.4f}", "lng": f"{lng:.4f}"},
            },
            "phone": phone,
            "website": f"{_LAST_ASCII[last_index]}.{draw.pick(_TLDS)}",
            "company": {
                "name": draw.pick(_COMPANY_FORMS).format(**company_parts),
                "catchPhrase": f"{draw.pick(_CATCH_1)} {draw.pick(_CATCH_2)} {draw.pick(_CATCH_3)}",
                "bs": f"{draw.pick(_BS_1)} {draw.pick(_BS_2)} {draw.pick(_BS_3)}",
            },
        }

    def post(self, post_id: int) -> Record:
        """The post with id ``post_id``."""
        draw = _Draw(self.seed, "post", post_id)
        return {
            "userId": (post_id - 1) // self.posts_per_user + 1,
            "id": post_id,
            "title": draw.words(2, 10),
            "body": draw.text(4),
        }

    def comment(self, comment_id: int) -> Record:
        """The comment with id ``comment_id``."""
        draw = _Draw(self.seed, "comment", comment_id)
        first = draw.byte() % len(_FIRST_ASCII)
        last = draw.byte() % len(_LAST_ASCII)
        return {
            "postId": (comment_id - 1) // COMMENTS_PER_POST + 1,
            "id": comment_id,
            "name": draw.words(3, 8),
            "email": f"{_FIRST_ASCII[first]}_{_LAST_ASCII[last]}@{draw.pick(_DOMAINS)}",
            "body": draw.text(4),
        }
