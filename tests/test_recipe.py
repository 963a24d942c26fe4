"""`bgr_core.recipe.build_stages`: which stages serve a request, in order."""

from bgr_core.recipe import build_stages
from bgr_core.request import parse_request


class Named:
    def __init__(self, name):
        self.name = name

    def __call__(self, frames):
        return frames


def _names(params, **kw):
    request = parse_request({"image_file": b"x", **params})
    kw.setdefault("sam_available", lambda: False)
    stages = build_stages(request, segment=Named("segment"), sam=lambda: Named("sam"), **kw)
    return [s.name for s in stages]


def test_default_order():
    assert _names({}) == ["segment", "windows", "shadow", "background"]  # layout none: nothing to move


def test_everything_on_and_off():
    on = _names({"refine": "sam", "plate_replacement": "blank", "layout": "center"})
    assert on == ["segment", "sam", "windows", "plates", "layout", "shadow", "background"]
    off = _names({"window_correction": "none", "effect": "none"})
    assert off == ["segment", "background"]
    assert _names({"output_size": "300x200", "effect": "none"}) == ["segment", "windows", "layout", "background"]


def test_auto_uses_sam_only_when_available_and_builds_it_only_then():
    built = []
    request = parse_request({"image_file": b"x"})

    def sam():
        built.append(1)
        return Named("sam")

    build_stages(request, segment=Named("segment"), sam=sam, sam_available=lambda: False)
    assert built == []
    stages = build_stages(request, segment=Named("segment"), sam=sam, sam_available=lambda: True)
    assert [s.name for s in stages][:2] == ["segment", "sam"] and built == [1]


def test_request_images_are_not_the_recipes_business():
    """The custom background and plate travel in each Frame: the recipe builds the same
    stages whatever images a request brings, without them."""
    names = _names({"background": "custom_background", "background_file": b"bg",
                    "plate_replacement": "image", "plate_base64": "eA=="})
    assert names == ["segment", "windows", "plates", "shadow", "background"]
