"""The web API's words, defined once: request parsing, the recipe, the stages and the
command line all use these tuples as they are."""

from __future__ import annotations

__all__ = ["BACKGROUNDS", "LAYOUTS", "EFFECTS", "PLATE_MODES", "WINDOW_MODES", "REFINE_MODES", "OUTPUT_FORMATS",
           "IMAGE_PARAMS", "COMPOSED_BACKGROUNDS"]

BACKGROUNDS = ("white_background", "transparent_background", "custom_background", "generative_background")
# the backgrounds `ComposeBackground` makes (the generated one is `GenerativeBackground`'s)
COMPOSED_BACKGROUNDS = ("white_background", "transparent_background", "custom_background")
LAYOUTS = ("center", "crop", "none")
EFFECTS = ("shadow", "none")
PLATE_MODES = ("image", "blank", "none")
WINDOW_MODES = ("tint", "see_through", "none")
REFINE_MODES = ("auto", "none", "sam")
OUTPUT_FORMATS = ("auto", "png", "jpg", "webp")
IMAGE_PARAMS = ("image_url", "image_base64", "image_file")
