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
        "le la les et est une des du que qui pour pas dans vous je ce cette avec sur au aux mais nous il elle très "
        "être mon ma mes sont ont votre à ne ces leur sa ses où aussi comme l d j qu n moi lui chez faire fait "
        "tout tous peux suis ai avoir".split()
    ),
    "es": tuple(
        "el los las y es una del que por para con no se lo su como pero muy está mi yo al ser esta este son "
        "tiene mis sus sin hay porque cuando donde también había fue ha aunque solo unos unas nos me algo todo "
        "todos hacer estoy soy ella ellos nuestro nuestra la le les tus pueda puedo quiero tengo escribe dame "
        "dime ayúdame cómo qué así eso esto ese esa cada desde hasta entre después usted un en ya mía tú".split()
    ),
    "de": tuple(
        "der die das und ist ein eine nicht ich du sie mit zu auf für von den dem es wir ihr sich auch mein "
        "bitte dass habe sind an im zum zur aus bei nach wie so oder aber wenn noch nur schon kann wird werden "
        "hat war einen einem einer meine meinen meiner dich mich mir dir uns kein keine damit um über ob".split()
    ),
    "it": tuple(
        "il la gli è di che per non un della delle dei degli nel nella nei sono mio mia miei mie tuo suo questo "
        "questa quello quella come anche perché molto più ho hai abbiamo essere fare così ci io noi voi loro "
        "alla alle ai dal dalla sul sulla scrivi ogni già sia dopo senza fino "
        # shared with Spanish or French: listed so that they vote for neither
        "una con mi ma su lo al del".split()
    ),
    "pt": tuple(
        "o os é do da dos das não um com em na nas meu minha meus minhas teu seu isto esse essa isso mas também "
        "muito mais eu ele ela nós vocês eles elas ao aos às pelo pela são estou tenho tem fazer assim já "
        "quando escreve faz ainda sobre lhe lhes "
        # shared with Spanish or English: listed so that they vote for neither
        "para como me se no nos por todo este esta porque as a".split()
    ),
}
# A word listed for k languages gives each of them 1/k of a vote ("que", "para", "como" ... count for little).
_WEIGHTS: dict[str, dict[str, float]] = {}
for _lang, _words in _STOPWORD_LISTS.items():
    for _w in set(_words):
        _WEIGHTS.setdefault(_w, {})[_lang] = 1.0
for _w, _langs in _WEIGHTS.items():
    for _lang in _langs:
        _langs[_lang] = 1.0 / len(_langs)
_WORD = re.compile(r"[^\W\d_]+")


def language_of(text: str) -> str:
    """Guess whether ``text`` is English, French, Spanish, German, Italian or Portuguese from its stopwords.

    Returns ``"en"``, ``"fr"``, ``"es"``, ``"de"``, ``"it"`` or ``"pt"`` when one language has at least two stopword
    votes and at least 1.5 times as many as any other (a word listed for k languages gives each 1/k of a vote);
    otherwise ``"other"``. Used to check that a reply to a ``technical/lang_*``
    prompt came back in the requested language.
    """
    words = _WORD.findall(text.lower())
    votes = dict.fromkeys(_STOPWORD_LISTS, 0.0)
    for w in words:
        for lang, weight in _WEIGHTS.get(w, {}).items():
            votes[lang] += weight
    counts = sorted(((v, lang) for lang, v in votes.items()), reverse=True)
    (best, lang), (second, _) = counts[0], counts[1]
    if best < 2 or best < 1.5 * second:
        return "other"
    return lang
