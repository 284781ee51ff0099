"""Drawing one synthetic face with OpenCV: the posed pen and the face's features.

``emorec.data.synthetic`` decides who is drawn with which expression in which
pose and adds the capture effects; this module only draws. ``Pen`` maps upright
face coordinates (fractions of the canvas side) through the pose onto the
canvas in fixed point, so every call is anti-aliased and sub-pixel accurate;
``draw_face`` draws neck, ears, face, hair, eyes, brows, nose and mouth from a
subject's traits and an expression's parameters.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Sub-pixel precision of the drawing calls (cv2 "shift" bits).
_SHIFT_BITS = 4
_FIXED = 1 << _SHIFT_BITS


class Pen:
    """Anti-aliased cv2 drawing in upright face coordinates, posed on the fly.

    Coordinates are fractions of the canvas side with the face centred at
    (0.5, 0.5); every point goes through the pose's similarity transform and
    is passed to cv2 in fixed point (``_SHIFT_BITS``) for sub-pixel accuracy.
    """

    def __init__(self, img: np.ndarray, angle: float, scale: float, shift) -> None:
        self.img = img
        self.side = float(img.shape[0])
        self.angle = angle
        self.scale = scale
        rad = math.radians(angle)
        # cv2's y axis points down, so a positive angle turns the face clockwise.
        self.k = k = scale * self.side * _FIXED  # face units -> fixed-point pixels
        self.m = np.array(
            [[k * math.cos(rad), -k * math.sin(rad)], [k * math.sin(rad), k * math.cos(rad)]]
        )
        self.t = (np.array([self.side / 2, self.side / 2]) + np.asarray(shift)) * _FIXED
        # Plain floats for single points: numpy's per-call overhead would
        # dominate the generation time otherwise.
        (self.m00, self.m01), (self.m10, self.m11) = self.m.tolist()
        self.tx, self.ty = self.t.tolist()

    def _map(self, pts) -> np.ndarray:
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2) - 0.5
        return np.rint(p @ self.m.T + self.t).astype(np.int32)

    def _width(self, w: float) -> int:
        return max(round(w * self.scale * self.side), 1)

    def ellipse(self, center, axes, color, thickness: float = -1, start=0.0, end=360.0):
        x, y = center[0] - 0.5, center[1] - 0.5
        c = (
            round(self.m00 * x + self.m01 * y + self.tx),
            round(self.m10 * x + self.m11 * y + self.ty),
        )
        a = (max(round(axes[0] * self.k), 1), max(round(axes[1] * self.k), 1))
        width = -1 if thickness < 0 else self._width(thickness)
        cv2.ellipse(
            self.img, c, a, self.angle, start, end, float(color), width, cv2.LINE_AA, _SHIFT_BITS
        )

    def line(self, *curves, color, thickness: float):
        """Open polylines, all in one cv2 call (each curve is a list of points)."""
        cv2.polylines(
            self.img,
            [self._map(c) for c in curves],
            False,
            float(color),
            self._width(thickness),
            cv2.LINE_AA,
            _SHIFT_BITS,
        )

    def fill(self, points, color):
        cv2.fillPoly(self.img, [self._map(points)], float(color), cv2.LINE_AA, _SHIFT_BITS)


# Shapes that do not depend on the face, computed once.
_T = np.linspace(-1.0, 1.0, 17)  # parameter across the mouth, corner to corner
_T2 = _T**2
_BULGE = 1.0 - _T2  # lip parting profile: most at the centre, none at the corners
_BULGE_LOW = _BULGE**0.8  # the lower lip drops rounder than the upper lifts
# One-sided corner lift and upper-lip raise, for the right (index 0) or left side.
_LIFT = (np.clip(_T, 0, 1) ** 1.5, np.clip(-_T, 0, 1) ** 1.5)
_SNARL = (np.clip(_T + 0.5, 0, 1), np.clip(-_T + 0.5, 0, 1))
_ARC = np.linspace(math.pi, 2 * math.pi, 19)  # upper half of an ellipse (y points down)
_ARC_COS, _ARC_SIN = np.cos(_ARC), np.sin(_ARC)
_EDGE = np.linspace(1.0, -1.0, 9)  # hairline, right to left
_EDGE4 = _EDGE**4


def draw_face(pen: Pen, ident: dict, ex: dict, flip: bool) -> None:
    """Draw one face; all sizes are fractions of the canvas side."""
    cx, cy = 0.5, 0.52
    fw = ident["face_w"]
    fh = fw * ident["ratio"]
    skin = ident["skin"]
    dark = lambda amount: skin - amount * min(skin, 120.0)  # noqa: E731 - a shade of the skin

    # Neck, face oval and ears, then hair: the top of an ellipse slightly
    # larger than the head, cut off by a hairline arching over the forehead.
    pen.fill(
        [
            (cx - 0.42 * fw, cy + 0.6 * fh),
            (cx + 0.42 * fw, cy + 0.6 * fh),
            (cx + 0.48 * fw, cy + 2 * fh),
            (cx - 0.48 * fw, cy + 2 * fh),
        ],
        dark(0.15),
    )
    for sign in (-1, 1):
        pen.ellipse((cx + sign * 0.97 * fw, cy - 0.02 * fh), (0.13 * fw, 0.2 * fh), dark(0.1))
    pen.ellipse((cx, cy), (fw, fh), skin)
    hairline_y = cy - fh * (0.35 + 0.25 * ident["hairline"])
    hair_x = np.concatenate([cx + 1.06 * fw * _ARC_COS, cx + 1.02 * fw * _EDGE])
    hair_y = np.concatenate(
        [cy - 0.12 * fh + fh * _ARC_SIN, hairline_y + (cy - 0.15 * fh - hairline_y) * _EDGE4]
    )
    pen.fill(np.stack([hair_x, hair_y], 1), ident["hair"])

    # Eyes: sclera, iris (flattened when the eye narrows), lid outline.
    eye_y = cy - 0.10 * fh
    ew = ident["eye_size"] * fw
    eh = max(ew * 0.8 * ex["eye"], 0.004)
    brows = []
    for sign in (-1, 1):
        x = cx + sign * ident["eye_spacing"] * fw
        pen.ellipse((x, eye_y), (ew, eh), min(skin + 55, 250))
        r = 0.5 * ew
        pen.ellipse((x, eye_y + 0.1 * eh), (r, min(r, 0.95 * eh)), ident["iris"])
        pen.ellipse((x, eye_y), (ew, eh), dark(0.6), 0.012)

        # Brows: outer end, arch, inner end; tilt lifts or drops the inner end.
        by = eye_y - 0.22 * fh - 0.14 * fh * ex["raise"]
        inner = by - 0.12 * fh * ex["tilt"]
        outer = by + 0.02 * fh * ex["tilt"]
        arch = 0.5 * (inner + outer) - 0.03 * fh * (1 - 0.5 * abs(ex["tilt"]))
        brows.append([(x + sign * 1.3 * ew, outer), (x, arch), (x - sign * 1.05 * ew, inner)])
    pen.line(*brows, color=ident["brow_tone"], thickness=ident["brow_thick"])

    # Nose: bridge and nostril base. Wrinkles fade in with their strength
    # (darker as "wrinkle" grows) rather than switching on at a threshold.
    nose_top, nose_bot = eye_y + 0.08 * fh, eye_y + (0.08 + ident["nose_len"]) * fh
    pen.line(
        [(cx + 0.03 * fw, nose_top), (cx + 0.09 * fw, nose_bot - 0.04 * fh), (cx, nose_bot)],
        color=dark(0.3),
        thickness=0.010,
    )
    pen.ellipse((cx, nose_bot), (0.15 * fw, 0.05 * fh), dark(0.35), 0.010, start=20, end=160)
    if ex["wrinkle"] > 0:
        folds = [
            [(cx - 0.13 * fw, y + 0.01 * fh), (cx, y - 0.012 * fh), (cx + 0.13 * fw, y + 0.01 * fh)]
            for y in (nose_top + 0.02 * fh, nose_top + 0.07 * fh)
        ]
        folds += [
            [
                (cx + sign * 0.2 * fw, nose_bot - 0.02 * fh),  # naso-labial folds
                (cx + sign * 0.4 * fw, nose_bot + 0.16 * fh),
            ]
            for sign in (-1, 1)
        ]
        pen.line(*folds, color=dark(0.5 * ex["wrinkle"]), thickness=0.009)

    # Mouth: a lip line y(t), t in [-1, 1] from corner to corner. "curve"
    # moves both corners, "asym" lifts one (side picked by flip) and the upper
    # lip on that side; "open" parts the lips, most at the centre.
    my = cy + 0.47 * fh
    mw = ident["mouth_w"] * fw * ex["width"]
    side = int(flip)
    base = my - ex["curve"] * 0.7 * mw * _T2 - ex["asym"] * 0.55 * mw * _LIFT[side]
    x = cx + _T * mw
    open_h = ex["open"] * 0.6 * mw / max(ex["width"], 0.6)  # a narrow mouth opens rounder
    upper = base - 0.3 * open_h * _BULGE - ex["asym"] * 0.1 * mw * _SNARL[side]
    lower = base + open_h * _BULGE_LOW
    lip = dark(0.55)
    if open_h > 0.012:
        pen.fill(
            np.stack([np.concatenate([x, x[::-1]]), np.concatenate([upper, lower[::-1]])], 1), 30
        )
        if ex["curve"] > 0.25:  # a broad smile shows the upper teeth
            teeth = upper + 0.35 * open_h * _BULGE
            pen.fill(
                np.stack([np.concatenate([x, x[::-1]]), np.concatenate([upper, teeth[::-1]])], 1),
                225,
            )
        pen.line(np.stack([x, upper], 1), color=lip, thickness=0.022)
        pen.line(np.stack([x, lower], 1), color=lip, thickness=0.026)
    else:
        pen.line(np.stack([x, 0.5 * (upper + lower)], 1), color=lip, thickness=0.03)
