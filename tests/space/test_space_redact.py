"""Redaction of phone numbers and e-mail addresses (the Space's checkbox)."""

import pytest
from f2rvlm.core.dialogue import Dialogue, Utterance
from f2rvlm.formats.redact import redact_dialogue, redact_text


@pytest.mark.parametrize("text", [
    "+44 20 7946 0958", "+1 (555) 123-4567", "555-123-4567", "0612345678", "0044 20 7946 0958",
    "612.345.6789", "+49\u00a0170\u00a01234567",
])
def test_phone_numbers_are_redacted(text):
    assert redact_text(f"call {text} now") == "call [phone] now"


@pytest.mark.parametrize("text", [
    "2022-03-12 14:08", "[12.3.2022 klo 14.08.18]", "9/25/26, 2:22\u202fPM", "IMG-20260925-WA0001.jpg",
    "price 1,234,567", "pi is 3.14159265358", "order 12345", "room 101",
])
def test_dates_times_prices_and_file_names_stay(text):
    assert redact_text(text) == text


def test_emails_and_speakers_redacted_ids_unchanged():
    d = Dialogue([Utterance("+44 20 7946 0958", "mail me: sam.o+x@example.co.uk"), Utterance("Alex", "ok")])
    red, changed = redact_dialogue(d)
    assert changed == 1 and len(red) == 2
    assert red.utterances[0].speaker == "[phone]" and red.utterances[0].text == "mail me: [email]"
    assert d.utterances[0].speaker == "+44 20 7946 0958"  # the original is not modified
