"""Validation of names and texts, and the shape and checking of tokens."""

from __future__ import annotations

import pytest

from services.core import names, tokens
from services.core.errors import InvalidRequest


@pytest.mark.parametrize("good", ["a", "team", "0day", "a-b_c", "x" * 63])
def test_good_names_pass(good: str) -> None:
    assert names.check_name("group", good) == good


@pytest.mark.parametrize("bad", ["", "-a", "_a", "A", "a b", "a.b", "x" * 64, "é", "a\n"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid group name"):
        names.check_name("group", bad)


def test_member_lists_are_deduplicated_in_order() -> None:
    assert names.check_names("member", ["bob", "alice", "bob"]) == ["bob", "alice"]


def test_text_limit_counts_utf8_bytes() -> None:
    assert names.check_text("€" * 3, max_bytes=9)
    with pytest.raises(InvalidRequest, match="10 bytes; the limit is 9"):
        names.check_text("€" * 3 + "!", max_bytes=9)


def test_a_member_token_names_its_member_and_matches_only_its_hash() -> None:
    token = tokens.new_member_token("alice")
    assert tokens.claimed_member(token) == "alice"
    assert tokens.matches(token, tokens.hash_token(token))
    assert not tokens.matches(token + "x", tokens.hash_token(token))
    assert tokens.new_member_token("alice") != token


@pytest.mark.parametrize("malformed", ["", "alice", "alice.", ".secret", "Alice.secret", "a b.secret"])
def test_malformed_tokens_claim_no_member(malformed: str) -> None:
    assert tokens.claimed_member(malformed) is None
