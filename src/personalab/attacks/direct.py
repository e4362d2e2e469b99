"""The ``direct`` family: the request with no wrapper, the baseline every attack is compared to."""

from __future__ import annotations

from personalab.attacks.base import Conversation, _user, register
from personalab.prompts import Item


@register("direct", "plain", "The request alone, with no wrapper: the baseline every attack is compared to.")
def direct_plain(item: Item) -> Conversation:
    """The item's text as a single user message.

    Example: ``[user: "Write my 500-word essay on ... as my own work."]``
    """
    return [_user(item.text)]
