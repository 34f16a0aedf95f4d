"""Redaction of phone numbers and e-mail addresses in imported chats (the Space's checkbox).

Redaction replaces text only, so utterance and image ids are unchanged: a fragment retrieved on
the redacted dialogue names the same turns as on the original. Speakers are redacted too
(WhatsApp names unsaved contacts by their number).

>>> redact_text("mail me at sam.oneil+x@example.co.uk or call +44 20 7946 0958")
'mail me at [email] or call [phone]'
>>> redact_text("on 2022-03-12 14:08 I paid 120.50, order 12345")
'on 2022-03-12 14:08 I paid 120.50, order 12345'

What counts as a phone number: a run of digits with spaces, dots, dashes or brackets between
them, 7-15 digits when it starts with `+` or `00`, else 9-15 digits (so dates, times, prices and
short numbers stay), not glued to letters, slashes or colons.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ..core.dialogue import Dialogue

EMAIL_TOKEN = "[email]"
PHONE_TOKEN = "[phone]"

_EMAIL = re.compile(r"(?<![\w.+'-])[\w.+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SEPARATORS = " \u00a0\u202f().-"
# possessive: a number that fails the look-ahead is skipped whole, never cut short
_PHONE = re.compile(
    rf"(?<![\w:/.+-])(?:\+|00)?\(?\d(?:[{re.escape(_SEPARATORS)}]*\d)*+\)?(?![\w/]|:\d)"
)


def _phone(match: re.Match) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    international = text.startswith(("+", "00"))
    low = 7 if international else 9
    decimal = text.count(".") == 1 and not any(c in text for c in _SEPARATORS.replace(".", ""))
    if low <= digits <= 15 and not decimal:
        return PHONE_TOKEN
    return text


def redact_text(text: str) -> str:
    """`text` with e-mail addresses and phone numbers replaced by `[email]` and `[phone]`."""
    if not text:
        return text
    return _PHONE.sub(_phone, _EMAIL.sub(EMAIL_TOKEN, text))


def redact_dialogue(dialogue: Dialogue) -> tuple[Dialogue, int]:
    """A copy of `dialogue` with every speaker and text redacted, and how many turns changed.

    Images are shared with the original (they are not altered)."""
    utterances, changed = [], 0
    for utterance in dialogue.utterances:
        speaker, text = redact_text(utterance.speaker), redact_text(utterance.text)
        changed += (speaker, text) != (utterance.speaker, utterance.text)
        utterances.append(replace(utterance, speaker=speaker, text=text))
    return Dialogue(utterances, dialogue.dialogue_id, dialogue.id_offset), changed
