"""Data-quality rules of the transforms layer, as blocking asset checks.

Blocking: when a check fails, its step fails, the run fails, and nothing
downstream of the checked asset runs in that run, so the exports of the
previous good run stay as they were. The rules themselves are
``platform_kit.checks`` functions shared with the other location.

The five checks run as three steps, because every step costs run bookkeeping
(docs/decisions.md#three-check-steps), while the UI still shows every check by
its own name: ``users_cleaned_checks`` and ``posts_cleaned_checks``
(``@dg.multi_asset_check``), and ``authors_exist`` on its own, because it
also reads users_cleaned and therefore waits for that table's blocking
checks; bundled with the other posts checks it would hide their results
whenever the users fail.
"""

from collections.abc import Iterator

import dagster as dg

from platform_kit import checks as rules
from platform_kit.frames import DataFrame

USERS = dg.AssetKey("users_cleaned")
POSTS = dg.AssetKey("posts_cleaned")

USERS_CLEANED_CHECKS = [
    dg.AssetCheckSpec(
        "user_ids_are_unique",
        asset=USERS,
        blocking=True,
        description="Every user_id occurs once (a repeated user would duplicate posts in joins).",
    ),
    dg.AssetCheckSpec(
        "emails_are_well_formed",
        asset=USERS,
        blocking=True,
        description="Every email looks like name@domain.tld (one @, no spaces); null counts as malformed.",
    ),
]

POSTS_CLEANED_CHECKS = [
    dg.AssetCheckSpec(
        "post_ids_are_unique",
        asset=POSTS,
        blocking=True,
        description="Every post_id occurs once.",
    ),
    dg.AssetCheckSpec(
        "titles_are_not_blank",
        asset=POSTS,
        blocking=True,
        description="No title is null, empty or only white space.",
    ),
]


def _named(result: dg.AssetCheckResult, spec: dg.AssetCheckSpec) -> dg.AssetCheckResult:
    """``result`` reported as the check described by ``spec``."""
    return dg.AssetCheckResult(
        asset_key=spec.asset_key,
        check_name=spec.name,
        passed=result.passed,
        description=result.description,
        metadata=result.metadata,
        severity=result.severity,
    )


def users_cleaned_results(users: DataFrame) -> list[dg.AssetCheckResult]:
    """The results of USERS_CLEANED_CHECKS for ``users``, in that order."""
    unique_ids, emails = USERS_CLEANED_CHECKS
    return [
        _named(rules.unique(users, "user_id"), unique_ids),
        _named(rules.well_formed_emails(users, "email"), emails),
    ]


def posts_cleaned_results(posts: DataFrame) -> list[dg.AssetCheckResult]:
    """The results of POSTS_CLEANED_CHECKS for ``posts``, in that order."""
    unique_ids, titles = POSTS_CLEANED_CHECKS
    return [
        _named(rules.unique(posts, "post_id"), unique_ids),
        _named(rules.not_blank(posts, "title"), titles),
    ]


@dg.multi_asset_check(specs=USERS_CLEANED_CHECKS, ins={"users_cleaned": dg.AssetIn(USERS)})
def users_cleaned_checks(users_cleaned: DataFrame) -> Iterator[dg.AssetCheckResult]:
    """users_cleaned: user_id is unique, emails are well formed (both blocking)."""
    yield from users_cleaned_results(users_cleaned)


@dg.multi_asset_check(specs=POSTS_CLEANED_CHECKS, ins={"posts_cleaned": dg.AssetIn(POSTS)})
def posts_cleaned_checks(posts_cleaned: DataFrame) -> Iterator[dg.AssetCheckResult]:
    """posts_cleaned: post_id is unique, no title is blank (both blocking)."""
    yield from posts_cleaned_results(posts_cleaned)


@dg.asset_check(asset=POSTS, additional_ins={"users_cleaned": dg.AssetIn(USERS)}, blocking=True)
def authors_exist(posts_cleaned: DataFrame, users_cleaned: DataFrame) -> dg.AssetCheckResult:
    """Every post's user_id is a user in users_cleaned.

    Checked on posts_cleaned, not on the joined posts_with_user_info, so that an
    orphan post stops everything built from posts (enriched posts, statistics,
    their exports) instead of letting them disagree with each other.
    """
    return rules.references(posts_cleaned, "user_id", users_cleaned, "user_id")


CHECKS = [users_cleaned_checks, posts_cleaned_checks, authors_exist]
