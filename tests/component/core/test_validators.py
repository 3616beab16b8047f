"""The one set of rules for what people type about the directory, and the one address
check: pure functions, tested directly (the CLI/admin parity test drives them through
both front ends)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from component.core import validators
from component.core.emails import AddressError, validate_address


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("name@example.org", "name@example.org"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("Name@Example.ORG", "Name@example.org"),
        ("name@bücher.example", "name@xn--bcher-kva.example"),
    ],
)
def test_addresses_accepted_everywhere(typed: str, stored: str) -> None:
    assert validators.email_address(typed) == stored
    assert validate_address(typed) == stored


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ('o"brien@example.org', "without a name, quotes"),
        ("josé@example.org", "without accents"),
        ("x@straße.example", "such as ß"),
        ("a@b@example.org", "just one"),
        ("eve@localhost", "valid email address"),
        ("eve@192.0.2.1", "valid email address"),
        ("=?utf-8?q?x?=@example.org", "valid email address"),
    ],
)
def test_addresses_refused_everywhere_with_the_same_sentence(typed: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as direct:
        validators.email_address(typed)
    with pytest.raises(AddressError) as wrapped:
        validate_address(typed)
    assert wrapped.value.message == str(direct.value)


def test_own_address_allows_a_local_mail_domain_only_in_the_config() -> None:
    assert validators.own_address("desk@localhost") == "desk@localhost"
    assert validators.own_address("desk@Mail.Test") == "desk@mail.test"
    with pytest.raises(ValueError):
        validators.own_address("de sk@localhost")
    with pytest.raises(ValueError):
        validators.email_address("desk@localhost")


@given(st.text(max_size=300))
def test_any_address_is_refused_with_one_sentence_or_stored_clean(text: str) -> None:
    try:
        address = validators.email_address(text)
    except ValueError as exc:
        message = str(exc)
        assert message.endswith(".") and "\n" not in message
        return
    assert address.isascii() and address.isprintable() and address.count("@") == 1
    assert validators.email_address(address) == address


def test_ban_reason_rules() -> None:
    assert validators.ban_reason("  spam  ") == "spam"
    for bad, words in [
        ("", "Give a reason"),
        ("x" * (validators.MAX_BAN_REASON + 1), "under 500"),
        ("two\nlines", "one line"),
        ("esc\x1b[2J", "one line"),
    ]:
        with pytest.raises(ValueError, match=words):
            validators.ban_reason(bad)


def test_names_titles_and_numbers() -> None:
    assert validators.name("ask-2", "queue", "guest-") == "ask-2"
    for bad in ["", "Ask", "guest-x", "a" * 64, "-a"]:
        with pytest.raises(ValueError):
            validators.name(bad, "queue", "guest-")
    assert validators.title("  Ask us  ") == "Ask us"
    for bad in ["", "x" * 201, "a\tb", "a\x00b", "a\u2028b"]:
        with pytest.raises(ValueError):
            validators.title(bad)
    assert validators.max_chats("50") == 50
    for bad in ["0", "51", "three"]:
        with pytest.raises(ValueError, match="from 1 to 50"):
            validators.max_chats(bad)
    assert validators.seconds("30") == 30.0
    for bad in ["0", "-1", "nan", "inf", str(8 * 24 * 3600)]:
        with pytest.raises(ValueError):
            validators.seconds(bad)
    assert validators.closed_days("2026-12-26, 2026-12-25") == ("2026-12-25", "2026-12-26")
    assert validators.escalation("off") is None


def test_referral_domains_and_membership() -> None:
    from component.core.validators import in_domains, referral_domains

    assert referral_domains("") == ()
    assert referral_domains(" Example.EDU,library.example.org  example.edu ") == (
        "example.edu",
        "library.example.org",
    )
    domains = ("example.edu",)
    assert in_domains("ill@example.edu", domains)
    assert in_domains("ill@lib.example.edu", domains)
    assert not in_domains("ill@badexample.edu", domains)
    assert not in_domains("ill@example.edu.evil.org", domains)
    assert in_domains("anyone@anywhere.org", ())


@pytest.mark.parametrize("count", [10_000, 100_000])
def test_too_many_referral_domains_are_refused_before_any_is_checked(
    monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """A pasted list of 10,000 domains used to go through the address check one by one
    before the count was looked at (seconds of the event loop for one admin form)."""
    checked: list[str] = []
    real = validators.email_address

    def counting(text: str) -> str:
        checked.append(text)
        return real(text)

    monkeypatch.setattr(validators, "email_address", counting)
    typed = ",".join(f"d{i}.example.org" for i in range(count))
    with pytest.raises(ValueError, match="at most 20 referral domains"):
        validators.referral_domains(typed)
    assert checked == []
    # Repeats of one domain are one domain, however many times it was pasted.
    assert validators.referral_domains(" ".join(["Example.org"] * count)) == ("example.org",)
    assert len(checked) == 1


@pytest.mark.parametrize(
    "typed",
    [
        "ill@exаmple.org",  # a Cyrillic "а" among Latin letters: looks like example.org
        "ill@examplе.edu",  # a Cyrillic "е"
        "ill@exαmple.org",  # a Greek alpha
        "ill@lib.pаypal.com",  # in any label
    ],
)
def test_a_domain_label_mixing_latin_with_cyrillic_or_greek_is_refused(typed: str) -> None:
    """Such a label shows as a well-known name but is another domain (xn--...): a
    coordinator's address or a referral domain typed or pasted that way would send mail,
    or allow referrals, somewhere else than the admin read."""
    with pytest.raises(ValueError, match="mixes alphabets"):
        validators.email_address(typed)
    domain = typed.partition("@")[2]
    with pytest.raises(ValueError, match="mixes alphabets"):
        validators.referral_domains(f"example.edu {domain}")
    with pytest.raises(ValueError, match="mixes alphabets"):
        validators.email_list(f"a@example.edu, {typed}")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("ill@bücher.example", "ill@xn--bcher-kva.example"),  # Latin with accents
        ("ill@пример.рф", "ill@xn--e1afmkfd.xn--p1ai"),  # Cyrillic only
        ("ill@παράδειγμα.ελ", "ill@xn--hxajbheg2az3al.xn--qxam"),  # Greek only
        ("ill@例え.テスト", "ill@xn--r8jz45g.xn--zckzah"),  # Japanese scripts together
        ("ill@shop.пример.com", "ill@shop.xn--e1afmkfd.com"),  # one script per label
    ],
)
def test_single_script_international_domains_are_kept(typed: str, stored: str) -> None:
    assert validators.email_address(typed) == stored
