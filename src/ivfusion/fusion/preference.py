"""What the fused image is for: a named preset or free text, switchable at run time.

Every fusion backend takes a :class:`Preference`. Presets are the stable, documented vocabulary (the node's
``preference`` parameter, config files, evaluation tables); free text is passed through untouched so that a
backend with a sentence encoder (the learned student) can embed it, while the classical baseline maps it to
the closest preset by keywords.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivfusion.errors import ConfigError

#: Named presets and what each asks of the fused image.
PRESETS: dict[str, str] = {
    "detection": "make targets stand out for the detector: warm objects bright, high thermal contrast",
    "visual": "natural look for a human operator: visible texture and colour first",
    "balanced": "equal say for thermal saliency and visible detail",
    "low_light": "night scene: lean on thermal, keep what visible detail there is",
    "fog": "haze or smoke: lean on thermal, restore visible contrast",
}

MAX_TEXT_LENGTH = 512

# Keyword → preset, for backends that cannot embed text. First match wins, so the specific go first.
_KEYWORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("fog", "haze", "smoke", "mist"), "fog"),
    (("night", "dark", "low light", "low-light"), "low_light"),
    (("detect", "pedestrian", "person", "people", "target", "warm", "hot", "thermal", "bright"), "detection"),
    (("texture", "natural", "visual", "colour", "color", "human", "detail", "visible"), "visual"),
)


@dataclass(frozen=True)
class Preference:
    """A parsed preference: ``preset`` is set for named presets, ``text`` always holds the request."""

    text: str
    preset: str | None

    @property
    def is_free_text(self) -> bool:
        return self.preset is None

    def nearest_preset(self) -> str:
        """The preset whose intent the text matches by keywords; ``balanced`` when nothing matches."""
        if self.preset is not None:
            return self.preset
        lowered = self.text.lower()
        for words, preset in _KEYWORDS:
            if any(w in lowered for w in words):
                return preset
        return "balanced"


def parse_preference(value: str) -> Preference:
    """Validate a user-supplied preference (parameter, CLI flag) and classify it.

    Raises ConfigError for empty or over-long text so that a bad parameter update is rejected before it
    reaches a backend.
    """
    if not isinstance(value, str):
        raise ConfigError(f"preference must be a string, got {type(value).__name__}")
    text = " ".join(value.split())
    if not text:
        raise ConfigError("preference must not be empty; use one of " + ", ".join(PRESETS) + " or free text")
    if len(text) > MAX_TEXT_LENGTH:
        raise ConfigError(f"preference text is {len(text)} characters; at most {MAX_TEXT_LENGTH} are accepted")
    key = text.lower().replace("-", "_").replace(" ", "_")
    if key in PRESETS:
        return Preference(text=key, preset=key)
    return Preference(text=text, preset=None)
