"""Seeded, deterministic generator of digit pictures that look like user input.

Each picture is one digit 0-9 rendered with a TrueType font bundled inside
matplotlib (so the set is the same on every machine with the same matplotlib
and Pillow), then given the look of a real input:

* font: 20 faces bundled with matplotlib: DejaVu Sans / Serif / Mono, STIX
  (Times-like) and Computer Modern (roman, sans, typewriter, bold, italic:
  its italic 4 is open, as handwritten ones are), in regular, bold and
  italic/oblique cuts;
* shape: extra stroke width 0-6 % of the font size, horizontal shear within
  +-0.25, width scaled by 0.75-1.25, rotation within +-15 degrees;
* size and place: the digit is 25-85 % of the canvas height; canvases are
  48-320 px high, 40-400 px wide; anywhere the digit fits;
* polarity and colours: mostly dark ink (black, blue, red, green, pencil grey)
  on light paper, 25 % light ink (white, chalk yellow) on a dark board;
* background: flat, linear or radial lighting gradient, paper texture,
  Gaussian noise, or transparent (RGBA, ink opaque, as canvas drawings are;
  the hidden colour is the paper's or, half the time, black as on a cleared
  HTML canvas; the ink may be light);
* photographed look: Gaussian blur and JPEG compression (quality 35-90);
* files: PNG, JPEG, BMP, WebP, TIFF, GIF (palette); 20 % saved as 8-bit
  grayscale, as scanners do.

Nothing here depends on global random state: everything is drawn from a
``numpy.random.Generator`` seeded per image with ``(seed, index)``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmb10.ttf",
    "cmti10.ttf",
)
DARK_INKS = ((0, 0, 0), (20, 30, 140), (150, 20, 20), (10, 90, 30), (70, 70, 70))
LIGHT_PAPERS = ((255, 255, 255), (245, 240, 225), (200, 200, 200), (230, 235, 250))
BACKGROUNDS = ("flat", "linear", "radial", "texture", "noise", "transparent")


@dataclass(frozen=True)
class SynthDigit:
    """One generated picture: the image as saved (``data``, encoded as ``fmt``) and its label."""

    label: int
    image: Image.Image
    data: bytes
    fmt: str
    description: str


def _ink_mask(digit: int, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """Anti-aliased coverage mask (mode L, 255 = ink) of one digit, rotated, tightly cropped."""
    font_name = FONTS[int(rng.integers(len(FONTS)))]
    size = 120
    font = ImageFont.truetype(str(FONT_DIR / font_name), size)
    stroke = int(round(rng.uniform(0.0, 0.06) * size))
    canvas = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(canvas).text(
        (size, size), str(digit), fill=255, font=font, stroke_width=stroke, stroke_fill=255
    )
    shear, stretch = float(rng.uniform(-0.25, 0.25)), float(rng.uniform(0.75, 1.25))
    c = 1.5 * size  # shear about the canvas centre: x_in = x + shear * (y - c)
    canvas = canvas.transform(
        canvas.size,
        Image.Transform.AFFINE,
        (1, shear, -shear * c, 0, 1, 0),
        Image.Resampling.BICUBIC,
    )
    angle = float(rng.uniform(-15, 15))
    canvas = canvas.rotate(angle, resample=Image.Resampling.BICUBIC)
    bbox = canvas.getbbox()
    assert bbox is not None
    mask = canvas.crop(bbox)
    mask = mask.resize((max(1, round(mask.width * stretch)), mask.height), Image.Resampling.LANCZOS)
    desc = f"{font_name} stroke={stroke} shear={shear:+.2f} width={stretch:.2f} rot={angle:+.0f}"
    return mask, desc


def _background(h: int, w: int, kind: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """float32 (h, w) multiplicative lighting/texture field around 1.0."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.ones((h, w), np.float32)
    if kind == "linear":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h).astype(np.float32)
        field = 1.0 - level * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    elif kind == "radial":
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = np.hypot((yy - cy) / h, (xx - cx) / w)
        field = 1.0 - level * np.clip(r / r.max(), 0, 1) ** 2
    elif kind == "texture":
        small = rng.normal(0, 1, (max(h // 8, 2), max(w // 8, 2))).astype(np.float32)
        img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
        field = 1.0 + 0.5 * level * np.asarray(img, np.float32) / 3
    return field


def _compose(mask: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """Place the mask on a canvas with colours, background, blur; returns RGB(A) image."""
    h = int(rng.integers(48, 321))
    w = int(np.clip(h * rng.uniform(0.6, 1.6), 40, 400))
    frac = rng.uniform(0.25, 0.85)
    scale = min(frac * h / mask.height, 0.9 * w / mask.width)
    mw, mh = max(1, round(mask.width * scale)), max(1, round(mask.height * scale))
    mask = mask.resize((mw, mh), Image.Resampling.LANCZOS)
    x0, y0 = int(rng.integers(0, w - mw + 1)), int(rng.integers(0, h - mh + 1))
    cover = np.zeros((h, w), np.float32)
    cover[y0 : y0 + mh, x0 : x0 + mw] = np.asarray(mask, np.float32) / 255
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    dark_ink = rng.uniform() < 0.75
    if dark_ink:
        ink = np.array(DARK_INKS[int(rng.integers(len(DARK_INKS)))], np.float32)
        paper = np.array(LIGHT_PAPERS[int(rng.integers(len(LIGHT_PAPERS)))], np.float32)
    else:
        ink = np.array((255, 255, 255) if rng.uniform() < 0.5 else (240, 230, 120), np.float32)
        paper = np.full(3, rng.uniform(0, 70), np.float32)
    level = float(rng.uniform(0.2, 0.5))
    light = _background(h, w, kind, level, rng)[..., None]
    rgb = (paper * (1 - cover[..., None]) + ink * cover[..., None]) * light
    if kind == "noise":
        rgb = rgb + rng.normal(0, rng.uniform(6, 20), rgb.shape)
    img = Image.fromarray(np.clip(rgb, 0, 255).round().astype(np.uint8), "RGB")
    blur = float(rng.uniform(0, 1.2)) if rng.uniform() < 0.5 else 0.0
    if blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(blur * h / 100))
    if kind == "transparent":
        if rng.uniform() < 0.5:  # a cleared HTML canvas: transparent black, then the ink
            rgb = np.asarray(img, np.float32) * (cover[..., None] > 0)
            img = Image.fromarray(rgb.astype(np.uint8), "RGB")
        img.putalpha(Image.fromarray((cover * 255).round().astype(np.uint8), "L"))
    desc = f"{'dark' if dark_ink else 'light'} ink, {kind} bg, blur={blur:.1f}, {w}x{h}"
    return img, desc


def _encode(img: Image.Image, rng: np.random.Generator) -> tuple[bytes, str, str]:
    """Encode as PNG (always for RGBA), JPEG (photos), or BMP/WebP/TIFF/GIF; returns bytes.

    20 % of the opaque pictures are first converted to 8-bit grayscale.
    """
    buf = io.BytesIO()
    if img.mode == "RGBA":
        img.save(buf, "PNG")
        return buf.getvalue(), "png", ""
    fmt = str(rng.choice(["png", "jpeg", "jpeg", "jpeg", "bmp", "webp", "tiff", "gif"]))
    gray = rng.uniform() < 0.2
    if gray:
        img = img.convert("L")
    extra = " gray" if gray else ""
    if fmt == "jpeg":
        quality = int(rng.integers(35, 91))
        img.save(buf, "JPEG", quality=quality)
        return buf.getvalue(), fmt, f"{extra} q={quality}"
    img.save(buf, fmt.upper(), **({"lossless": True} if fmt == "webp" else {}))
    return buf.getvalue(), fmt, extra


def make_digit(seed: int, index: int, label: int | None = None) -> SynthDigit:
    """Picture ``index`` of the set seeded with ``seed`` (label ``index % 10`` by default)."""
    rng = np.random.default_rng([seed, index])
    label = index % 10 if label is None else label
    mask, font_desc = _ink_mask(label, rng)
    img, look = _compose(mask, rng)
    data, fmt, extra = _encode(img, rng)
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    return SynthDigit(label, decoded, data, fmt, f"{font_desc}, {look}, {fmt}{extra}")


def make_digits(n: int, seed: int = 0) -> list[SynthDigit]:
    """``n`` pictures, labels cycling 0..9 (balanced), deterministic for ``seed``."""
    return [make_digit(seed, i) for i in range(n)]


def write_digits(folder: Path, n: int, seed: int = 0) -> list[tuple[Path, int]]:
    """Write ``n`` pictures as ``<index>_<label>.<ext>`` into ``folder``; returns (path, label)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, d in enumerate(make_digits(n, seed)):
        path = folder / f"{i:04d}_{d.label}.{d.fmt}"
        path.write_bytes(d.data)
        out.append((path, d.label))
    return out


def digit(
    text: str = "7",
    size: tuple[int, int] = (120, 160),
    at: tuple[int, int] = (25, 15),
    ink: int = 0,
    paper: int = 255,
    font_size: int = 110,
) -> Image.Image:
    """A grayscale picture of ``text`` drawn with DejaVu Sans at ``at`` (left, top)."""
    img = Image.new("L", size, paper)
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), font_size)
    ImageDraw.Draw(img).text(at, text, fill=ink, font=font)
    return img


def diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images, in grey levels."""
    return float(np.abs(a.astype(int) - b.astype(int)).mean())
