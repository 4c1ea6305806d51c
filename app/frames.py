"""A finished run as an animated GIF for slides: each kept step's text drawn as the live view shows it (new tokens
orange, earlier ones green, masks as grey blocks), wrapped at spaces only, with the step in a header line."""
from __future__ import annotations

import re

from PIL import Image, ImageDraw, ImageFont

from .charts import COLORS

WIDTH, MARGIN, FONT_SIZE = 900, 24, 20
MAX_FRAMES = 80            # frames in one GIF (a longer run shows every n-th kept step, and always the last)
STEP_MS, LAST_MS = 300, 2500
MAX_LINES = 40             # a longer text is cut with "…" (the JSON download keeps all of it)


def _pieces(chips) -> list[list[tuple[str, str | None]]]:
    """The chips as words: runs of non-space characters (a word's pieces of different kinds stay one word),
    the spaces between them, and line breaks, each a list of (text, kind)."""
    words, word = [], []
    for text, kind in chips:
        if kind == "mask":  # a masked stretch is one block, as wide as its glyphs
            if word:
                words.append(word)
                word = []
            words.append([(text, "mask")])
            continue
        for part in re.findall(r"\n|[^\S\n]+|\S+", text):
            if part.isspace():
                if word:
                    words.append(word)
                    word = []
                words.append([(part, None)])
            else:
                word.append((part, kind))
    if word:
        words.append(word)
    return words


def _lines(chips, font, width: int) -> list[list[tuple[str, str | None]]]:
    """Greedy wrapping of the words into lines no wider than `width` (a line break in the text starts a line)."""
    lines, line, used = [], [], 0.0
    for word in _pieces(chips):
        if word[0][0] == "\n":
            lines.append(line)
            line, used = [], 0.0
            continue
        w = sum(font.getlength(t) for t, _ in word)
        if word[0][0].isspace():
            if line:
                line += word
                used += w
            continue
        if line and used + w > width:
            while line and line[-1][0].isspace():
                line.pop()
            lines.append(line)
            line, used = [], 0.0
        line += word
        used += w
    lines.append(line)
    return lines


def draw_frame(chips, header: str, font=None) -> Image.Image:
    """One step as a picture: the header, then the text with each piece on its colour."""
    font = font or ImageFont.load_default(size=FONT_SIZE)
    lines = _lines(chips, font, WIDTH - 2 * MARGIN)
    if len(lines) > MAX_LINES:
        lines = lines[:MAX_LINES - 1] + [[("…", None)]]
    step = int(FONT_SIZE * 1.5)
    img = Image.new("RGB", (WIDTH, MARGIN * 2 + step * (len(lines) + 1)), "white")
    pen = ImageDraw.Draw(img)
    pen.text((MARGIN, MARGIN), header, fill="#555555", font=font)
    for row, line in enumerate(lines, start=1):
        x, y = MARGIN, MARGIN + row * step
        for text, kind in line:
            w = font.getlength(text)
            if kind in COLORS:
                pen.rectangle([x, y - 2, x + w, y + FONT_SIZE + 3], fill=COLORS[kind])
            if kind != "mask":
                pen.text((x, y), text, fill="black", font=font)
            x += w
    return img


def run_gif(frames, total_steps: int, path: str) -> str:
    """Write the kept frames of a run, (step, chips, status), as a looping GIF at `path`; the last frame holds."""
    if not frames:
        raise ValueError("no steps to draw")
    stride = max(1, -(-len(frames) // MAX_FRAMES))
    chosen = frames[::stride]
    if chosen[-1] is not frames[-1]:
        chosen.append(frames[-1])
    font = ImageFont.load_default(size=FONT_SIZE)
    images = [draw_frame([(t, k if k in COLORS else None) for t, k in chips], f"step {s} of {total_steps}", font)
              for s, chips, _ in chosen]
    height = max(im.height for im in images)  # one size for every frame: the tallest
    images = [im if im.height == height else _pad(im, height) for im in images]
    images[0].save(path, save_all=True, append_images=images[1:], loop=0, optimize=True,
                   duration=[STEP_MS] * (len(images) - 1) + [LAST_MS])
    return path


def _pad(img: Image.Image, height: int) -> Image.Image:
    out = Image.new("RGB", (img.width, height), "white")
    out.paste(img, (0, 0))
    return out
