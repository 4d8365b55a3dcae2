"""Every name the top-level package advertises resolves to a real object."""

from __future__ import annotations

import pytest

import hvgp


@pytest.mark.parametrize("name", sorted(hvgp._EXPORTS))
def test_advertised_names_resolve(name: str) -> None:
    assert getattr(hvgp, name) is not None


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        hvgp.no_such_thing  # noqa: B018
