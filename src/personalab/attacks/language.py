"""A stop-word guesser of a reply's language, to check that a ``technical/lang_*`` prompt was answered in kind."""

from __future__ import annotations

import re

_STOPWORD_LISTS: dict[str, tuple[str, ...]] = {
    "en": tuple(
        "the and is are of to you that it with for this was have be not your my what will can would from they "
        "there which about our as by he she his her has had been were at on or if but all we i do did just how "
        "who them their than then into some could should up out any off over even though every".split()
    ),
    "fr": tuple(
        "le les et est une des du que qui pour pas dans vous je ce cette avec sur au aux mais nous il elle très "
        "être mon ma mes sont ont votre à ne ces leur sa ses où aussi comme l d j qu n moi lui chez faire fait "
        "tout tous peux suis ai avoir".split()
    ),
    "es": tuple(
        "el los las y es una del que por para con no se lo su como pero muy está mi yo al ser esta este son "
        "tiene mis sus sin hay porque cuando donde también había fue ha aunque solo unos unas nos me algo todo "
        "todos hacer estoy soy ella ellos nuestro nuestra".split()
    ),
    "de": tuple(
        "der die das und ist ein eine nicht ich du sie mit zu auf für von den dem es wir ihr sich auch mein "
        "bitte dass habe sind an im zum zur aus bei nach wie so oder aber wenn noch nur schon kann wird werden "
        "hat war einen einem einer meine meinen meiner dich mich mir dir uns kein keine damit um über ob".split()
    ),
}
# Only words that belong to exactly one language vote ("que", "es", "du" ... are ambiguous and dropped).
_STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(w for w in words if sum(w in other for other in _STOPWORD_LISTS.values()) == 1)
    for lang, words in _STOPWORD_LISTS.items()
}
_WORD = re.compile(r"[^\W\d_]+")


def language_of(text: str) -> str:
    """Guess whether ``text`` is English, French, Spanish or German from its stopwords.

    Returns ``"en"``, ``"fr"``, ``"es"`` or ``"de"`` when one language has at least two stopword hits and at
    least twice as many as any other; otherwise ``"other"``. Used to check that a reply to a ``technical/lang_*``
    prompt came back in the requested language.
    """
    words = _WORD.findall(text.lower())
    counts = sorted(((sum(w in stop for w in words), lang) for lang, stop in _STOPWORDS.items()), reverse=True)
    (best, lang), (second, _) = counts[0], counts[1]
    if best < 2 or best < 2 * second:
        return "other"
    return lang
