"""Seeded drawing of the synthetic MVTec-like samples that :mod:`frad.datasets.synthetic` writes as datasets.

Two styles:

* ``texture`` (names in :data:`~frad.datasets.mvtec_ad.MVTEC_TEXTURES`): oriented stripes, a weave or a wood-like
  grain with random phase, slight orientation and intensity jitter and pixel noise.
  Defects: ``color`` (an irregular stain of a distinct colour) and ``scratch`` (a thin curved stroke,
  darker or brighter than the texture).
* ``object`` (names in :data:`~frad.datasets.mvtec_ad.MVTEC_OBJECTS`): a centred elliptic part with a rim, an inner
  ring and radial ridges on a plain background, with small position/size/rotation jitter.
  Defects: ``contamination`` (an irregular, mottled blob of a distinct colour), ``crack`` (a thin jagged
  dark stroke, sometimes branched) and ``missing`` (a chunk of the rim removed, showing background).

Per-image jitter (pose, orientation, intensity) is uniform on a small range, never Gaussian: every normal
test image then lies within the variation the train images span (a Gaussian's tails put a few test images at
poses no train image covers, which the model rightly scores as anomalous although they are labelled good).

Any other name gets a style from a stable SHA-256 hash of the name. Every image has its own RNG seeded
from ``(seed, category, split, defect, index)`` by SHA-256 (:func:`render_sample`), so the same seed gives
byte-identical images and no image depends on how many others are drawn. Masks cover exactly the pixels the
defect painted over.
"""

from __future__ import annotations

import colorsys
import hashlib
from typing import NamedTuple

import numpy as np
from scipy import ndimage
from skimage.draw import line, polygon
from skimage.morphology import disk

from frad.datasets.layout import GOOD
from frad.datasets.mvtec_ad import MVTEC_OBJECTS, MVTEC_TEXTURES
from frad.errors import ConfigError

TEXTURE = "texture"
OBJECT = "object"
TEXTURE_DEFECTS: tuple[str, ...] = ("color", "scratch")
OBJECT_DEFECTS: tuple[str, ...] = ("contamination", "crack", "missing")

DEFAULT_SIZE = 256

# Object pose jitter, uniform on ± these bounds (module docstring): centre shift (fraction of the image size),
# relative radius change, rotation (radians).
OBJECT_POSE_JITTER = {"shift": 0.025, "scale": 0.025, "rotation": 0.25}


class Rendered(NamedTuple):
    """One synthetic sample: uint8 ``H×W×3`` image, bool ``H×W`` defect mask, and the same image without defect."""

    image: np.ndarray
    mask: np.ndarray
    clean: np.ndarray


# ---------------------------------------------------------------------------------------------- seeding


def _stable_int(*parts: object) -> int:
    """128-bit integer from a SHA-256 of ``parts`` (stable across processes, unlike ``hash()``)."""
    # "frad.synthetic" salts every seed (the module these images were first drawn in, now frad.datasets.synthetic): changing it changes them all
    text = "\x1f".join(str(p) for p in ("frad.synthetic", *parts))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:16], "big")


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(_stable_int(*parts)))


def category_style(category: str) -> str:
    """``"texture"`` or ``"object"``: fixed for MVTec names, from a stable hash of the name otherwise."""
    if category in MVTEC_TEXTURES:
        return TEXTURE
    if category in MVTEC_OBJECTS:
        return OBJECT
    return TEXTURE if _stable_int("style", category) % 2 == 0 else OBJECT


def defect_types(category: str) -> tuple[str, ...]:
    """Defect types the generator paints for ``category`` (sorted)."""
    return TEXTURE_DEFECTS if category_style(category) == TEXTURE else OBJECT_DEFECTS


# ---------------------------------------------------------------------------------------------- helpers


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def _distinct_colour(rng: np.random.Generator, avoid: list[np.ndarray], min_dist: float = 0.4) -> np.ndarray:
    """A saturated colour at least ``min_dist`` (RGB, 0..1) from every colour in ``avoid``."""
    for _ in range(64):
        c = _hsv(rng.random(), rng.uniform(0.55, 0.95), rng.uniform(0.45, 0.95))
        if min(np.linalg.norm(c - a) for a in avoid) >= min_dist:
            return c
    return np.clip(1.0 - np.mean(avoid, axis=0), 0.0, 1.0)  # complement of the average


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]) -> np.ndarray:
    """Gaussian-filtered white noise scaled to [-1, 1]."""
    n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return n / (np.abs(n).max() + 1e-12)


def _blob(
    rng: np.random.Generator, cy: float, cx: float, radius: float, size: int, irregular: float = 0.35
) -> np.ndarray:
    """Irregular star-shaped polygon mask."""
    k = int(rng.integers(10, 18))
    ang = np.linspace(0.0, 2 * np.pi, k, endpoint=False) + rng.uniform(-0.2, 0.2, k)
    rad = radius * (1.0 + irregular * rng.uniform(-1.0, 1.0, k))
    rr, cc = polygon(cy + rad * np.sin(ang), cx + rad * np.cos(ang), shape=(size, size))
    mask = np.zeros((size, size), dtype=bool)
    mask[rr, cc] = True
    return mask


def _stroke(points: np.ndarray, radius: int, size: int) -> np.ndarray:
    """Mask of a polyline through ``points`` (N×2, y/x), thickened by a disc of ``radius``."""
    mask = np.zeros((size, size), dtype=bool)
    pts = np.rint(points).astype(int)
    for (y0, x0), (y1, x1) in zip(pts[:-1], pts[1:]):
        rr, cc = line(y0, x0, y1, x1)
        ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
        mask[rr[ok], cc[ok]] = True
    if radius > 0:
        mask = ndimage.binary_dilation(mask, structure=disk(radius))
    return mask


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _luma(c: np.ndarray) -> float:
    return float(np.dot(c, (0.299, 0.587, 0.114)))


# ---------------------------------------------------------------------------------------------- textures


def _texture_params(rng: np.random.Generator) -> dict:
    hue = rng.random()
    sat = rng.uniform(0.1, 0.5)
    return {
        "kind": str(rng.choice(["stripes", "weave", "grain"])),
        "c0": _hsv(hue, sat, rng.uniform(0.3, 0.45)),
        "c1": _hsv(hue + rng.uniform(-0.05, 0.05), sat, rng.uniform(0.6, 0.8)),
        "theta": rng.uniform(0.0, np.pi),
        "period": rng.uniform(8.0, 20.0) / 256.0,  # fraction of the image size
        "noise": rng.uniform(0.02, 0.045),
    }


def _render_texture(p: dict, rng: np.random.Generator, size: int) -> dict:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    theta = p["theta"] + rng.uniform(-0.05, 0.05)  # bounded jitter (module docstring)
    freq = 2 * np.pi / (p["period"] * size)
    a = freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 2 * np.pi)
    if p["kind"] == "stripes":
        u = 0.5 + 0.5 * np.sin(a)
    elif p["kind"] == "weave":
        b = freq * (-xx * np.sin(theta) + yy * np.cos(theta)) + rng.uniform(0, 2 * np.pi)
        u = 0.5 + 0.5 * np.sin(a) * np.sin(b)
    else:  # grain: smooth anisotropic noise bent by a low-amplitude wave
        u = 0.5 + 0.3 * _smooth_noise(rng, (size, size), (size / 64, size / 8)) + 0.2 * np.sin(a / 3)
    img = p["c0"] + (p["c1"] - p["c0"]) * u[..., None]
    img = img * (1.0 + rng.uniform(-0.04, 0.04)) + rng.normal(0.0, p["noise"], (size, size, 1))
    return {"image": np.clip(img, 0.0, 1.0)}


def _paint_texture_defect(
    p: dict, scene: dict, defect: str, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray]:
    img = scene["image"].copy()
    lo, hi = 0.15 * size, 0.85 * size
    if defect == "scratch":
        length = rng.uniform(0.2, 0.45) * size
        ang = rng.uniform(0, 2 * np.pi)
        d = np.array([np.sin(ang), np.cos(ang)])
        c = rng.uniform(lo, hi, 2)
        p0, p2 = c - d * length / 2, c + d * length / 2
        p1 = c + np.array([-d[1], d[0]]) * rng.uniform(-0.2, 0.2) * length  # bend
        t = np.linspace(0.0, 1.0, 40)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2  # quadratic Bézier
        mask = _stroke(pts, max(1, int(round(rng.uniform(1.0, 2.5) * size / 256))), size)
        mean = _luma((p["c0"] + p["c1"]) / 2)
        value = rng.uniform(0.02, 0.12) if mean > 0.5 else rng.uniform(0.9, 0.98)
        img[mask] = value + rng.normal(0.0, 0.02, (int(mask.sum()), 1))
    elif defect == "color":
        cy, cx = rng.uniform(lo, hi, 2)
        mask = _blob(rng, cy, cx, rng.uniform(0.04, 0.09) * size, size)
        colour = _distinct_colour(rng, [p["c0"], p["c1"]])
        # keep half of the texture's contrast inside the stain so it has structure
        img[mask] = colour + 0.5 * (img[mask] - (p["c0"] + p["c1"]) / 2)
    else:
        raise ConfigError(f"unknown texture defect '{defect}': use one of {', '.join(TEXTURE_DEFECTS)}")
    return np.clip(img, 0.0, 1.0), mask


# ---------------------------------------------------------------------------------------------- objects


def _object_params(rng: np.random.Generator) -> dict:
    dark_bg = bool(rng.random() < 0.5)
    bg = rng.uniform(0.05, 0.2) if dark_bg else rng.uniform(0.8, 0.92)
    hue = rng.random()
    body = _hsv(hue, rng.uniform(0.2, 0.6), rng.uniform(0.6, 0.8) if dark_bg else rng.uniform(0.3, 0.5))
    rim = np.clip(body + rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.22), 0.0, 1.0)
    return {
        "bg": np.full(3, bg) + rng.uniform(-0.02, 0.02, 3),
        "body": body,
        "rim": rim,
        "radius": rng.uniform(0.28, 0.36),  # semi-major axis, fraction of the size
        "aspect": rng.uniform(0.8, 1.0),
        "rotation": rng.uniform(0.0, np.pi),
        "ridges": int(rng.integers(3, 9)),
        "ridge_amp": rng.uniform(0.04, 0.08),
    }


def _render_object(p: dict, rng: np.random.Generator, size: int) -> dict:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    j = OBJECT_POSE_JITTER
    cy, cx = size / 2 + rng.uniform(-j["shift"], j["shift"], 2) * size
    rad = p["radius"] * size * (1.0 + rng.uniform(-j["scale"], j["scale"]))
    rot = p["rotation"] + rng.uniform(-j["rotation"], j["rotation"])
    dx, dy = xx - cx, yy - cy
    u = dx * np.cos(rot) + dy * np.sin(rot)
    v = -dx * np.sin(rot) + dy * np.cos(rot)
    r_n = np.hypot(u / rad, v / (rad * p["aspect"]))  # 1 on the outline
    ang = np.arctan2(v, u)
    inside = r_n <= 1.0

    bg = p["bg"] + rng.normal(0.0, 0.01, (size, size, 1))
    shade = 1.0 - 0.15 * r_n + p["ridge_amp"] * np.cos(p["ridges"] * ang) * ((r_n > 0.3) & (r_n < 0.85))
    shade = shade - 0.12 * (np.abs(r_n - 0.45) < 0.03)  # inner ring
    grain = rng.normal(0.0, 0.012, (size, size, 1))
    body = np.where((r_n >= 0.85)[..., None], p["rim"] + grain, p["body"] * shade[..., None] + grain)  # rim
    img = np.where(inside[..., None], body, bg) * (1.0 + rng.uniform(-0.03, 0.03))
    return {
        "image": np.clip(img, 0.0, 1.0),
        "background": np.clip(bg, 0.0, 1.0),
        "inside": inside,
        "r_n": r_n,
        "center": (cy, cx),
        "radius": rad,
        "rotation": rot,
    }


def _object_point(p: dict, scene: dict, r_n: float, angle: float) -> np.ndarray:
    """Image (y, x) of the point at normalised radius ``r_n`` and polar ``angle`` on the part."""
    rad, rot = scene["radius"], scene["rotation"]
    u, v = r_n * rad * np.cos(angle), r_n * rad * p["aspect"] * np.sin(angle)
    cy, cx = scene["center"]
    return np.array([cy + u * np.sin(rot) + v * np.cos(rot), cx + u * np.cos(rot) - v * np.sin(rot)])


def _paint_object_defect(
    p: dict, scene: dict, defect: str, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray]:
    img = scene["image"].copy()
    inside = scene["inside"]
    if defect == "crack":
        step = 0.03 * size
        walks = [(_object_point(p, scene, rng.uniform(0.2, 0.7), rng.uniform(0, 2 * np.pi)), int(rng.integers(6, 13)))]
        mask = np.zeros((size, size), dtype=bool)
        width = max(1, int(round(rng.uniform(1.0, 2.0) * size / 256)))
        while walks:
            pos, n = walks.pop()
            heading = rng.uniform(0, 2 * np.pi)
            pts = [pos]
            for _ in range(n):
                heading += rng.normal(0.0, 0.5)
                pts.append(pts[-1] + step * np.array([np.sin(heading), np.cos(heading)]))
            mask |= _stroke(np.array(pts), width, size)
            if n > 5 and rng.random() < 0.5:  # one shorter branch from the middle
                walks.append((pts[len(pts) // 2], int(rng.integers(3, 6))))
        mask &= inside
        value = p["body"] * 0.2 if _luma(p["body"]) > 0.4 else np.minimum(p["body"] + 0.5, 1.0)
        img[mask] = value + rng.normal(0.0, 0.02, (int(mask.sum()), 1))
    elif defect == "missing":
        centre = _object_point(p, scene, 1.0, rng.uniform(0, 2 * np.pi))
        mask = _blob(rng, centre[0], centre[1], rng.uniform(0.15, 0.3) * scene["radius"], size, irregular=0.25)
        mask &= inside
        img[mask] = scene["background"][mask]
    elif defect == "contamination":
        centre = _object_point(p, scene, rng.uniform(0.0, 0.6), rng.uniform(0, 2 * np.pi))
        mask = _blob(rng, centre[0], centre[1], rng.uniform(0.04, 0.08) * size, size) & inside
        colour = _distinct_colour(rng, [p["body"], p["rim"], p["bg"]])
        mottle = 1.0 + 0.25 * _smooth_noise(rng, (size, size), 1.5)
        img[mask] = colour * mottle[mask][:, None]
    else:
        raise ConfigError(f"unknown object defect '{defect}': use one of {', '.join(OBJECT_DEFECTS)}")
    return np.clip(img, 0.0, 1.0), mask


# ---------------------------------------------------------------------------------------------- one sample


def render_sample(
    category: str, defect: str = GOOD, index: int = 0, seed: int = 0, *, split: str = "test", size: int = DEFAULT_SIZE
) -> Rendered:
    """Render one sample exactly as :func:`frad.datasets.synthetic.generate_category` writes it (``split`` is ``"train"``
    or ``"test"``)."""
    style = category_style(category)
    params = (_texture_params if style == TEXTURE else _object_params)(_rng(seed, category, "params"))
    rng = _rng(seed, category, split, defect, index, size)
    scene = (_render_texture if style == TEXTURE else _render_object)(params, rng, size)
    if defect == GOOD:
        img = _to_uint8(scene["image"])
        return Rendered(img, np.zeros((size, size), dtype=bool), img)
    paint = _paint_texture_defect if style == TEXTURE else _paint_object_defect
    min_area = max(6, int(0.0008 * size * size))
    for _ in range(50):  # redraw defects clipped to almost nothing (e.g. a crack walking off the part)
        image, mask = paint(params, scene, defect, rng, size)
        if mask.sum() >= min_area:
            break
    return Rendered(_to_uint8(image), mask, _to_uint8(scene["image"]))
