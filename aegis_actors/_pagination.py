"""One pagination for every `list` of the management API.

A list is sorted by a key; a page is up to `limit` items after `cursor`, cut
short so that its JSON fits in one NATS message (at least one item, so a
page always moves on); `nextCursor` is the key of its last item, or null at
the end. A cursor is that key written out: the name for definitions and
applications... and `{name}/{id}` where names repeat (configurations listed
across applications). Names and ids never hold a `/`. See
docs/reference/management-api.md.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Final, Generic, TypeVar

from pydantic import AfterValidator, Field, Strict
from pydantic_core import PydanticCustomError

from aegis_actors._errors import ErrorCode, ServiceError

DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000
#: Bytes a page leaves for the envelope around its items and the longest cursor.
ENVELOPE_BYTES: Final = 1024

#: The `limit` of a list request: items per page.
Limit = Annotated[int, Strict(), Field(ge=1, le=MAX_PAGE)]
#: The `cursor` of a list request: the `nextCursor` of the previous page.
Cursor = Annotated[str, Strict(), Field(min_length=1, max_length=256)]


def _name_and_id(cursor: str) -> str:
    name, slash, ident = cursor.partition("/")
    if not (name and slash and ident) or "/" in ident:
        raise PydanticCustomError("cursor", "not a cursor this service gave out ({name}/{id})")
    return cursor


#: A `{name}/{id}` cursor (applications, configurations), checked before any read.
NameIdCursor = Annotated[Cursor, AfterValidator(_name_and_id)]

T = TypeVar("T")
Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, and the cursor of the next one (None at the end)."""

    items: list[T]
    next_cursor: str | None


def cursor_of(key: Key) -> str:
    """The cursor that pages after the item whose sort key is `key`."""
    return "/".join(key)


def key_of(cursor: str, parts: int) -> Key:
    """The sort key a cursor names.

    Raises:
        ServiceError: 422 for a cursor no page gave out (another number of parts).
    """
    key = tuple(cursor.split("/"))
    if len(key) != parts or not all(key):
        raise ServiceError.of(
            ErrorCode.VALIDATION_ERROR,
            "cursor: not a cursor this service gave out",
            field="cursor",
            value=cursor,
        )
    return key


def fitting(sizes: Iterable[int], max_bytes: int | None) -> int | None:
    """How many items of these JSON sizes fit in `max_bytes` (at least one); None: all.

    Twenty configurations of 60 KiB are over the 1 MiB a NATS message holds by
    default: unfitted, the reply could not be sent and the caller heard nothing.
    """
    if max_bytes is None:
        return None
    total = 0
    for kept, size in enumerate(sizes):
        total += size + 1  # and a comma
        if kept and total > max_bytes:
            return kept
    return None


def paginate(
    items: Iterable[T], key: Callable[[T], Key], limit: int, cursor: str | None, *, parts: int
) -> Page[T]:
    """Up to `limit` of `items` after `cursor`, sorted by `key` (a tuple of `parts` strings)."""
    ordered = sorted(items, key=key)
    start = 0
    if cursor is not None:
        start = bisect.bisect_right([key(item) for item in ordered], key_of(cursor, parts))
    page = ordered[start : start + limit]
    more = start + len(page) < len(ordered)
    return Page(page, cursor_of(key(page[-1])) if more and page else None)


def fit(
    page: Page[T], key: Callable[[T], Key], size: Callable[[T], int], max_bytes: int | None
) -> Page[T]:
    """`page` cut short so that its items' JSON (`size` each) fits in `max_bytes`."""
    kept = fitting(map(size, page.items), max_bytes)
    if kept is None:
        return page
    items = page.items[:kept]
    return Page(items, cursor_of(key(items[-1])))
