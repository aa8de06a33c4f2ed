"""Warnings raised inside a step, logged once each (with their count) and kept for metadata."""

import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def warnings_logged(context) -> Iterator[list[str]]:
    """Collect the warnings raised inside; log each distinct message once (with its count)."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    for text, n in Counter(str(w.message) for w in caught).items():
        context.log.warning(text if n == 1 else f"{text} (x{n})")
        messages.append(text)
