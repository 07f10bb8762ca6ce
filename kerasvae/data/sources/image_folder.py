"""The `image_folder` source: PNG/JPEG files in a folder, optionally one subfolder per class."""

import dataclasses
import itertools
import logging
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from kerasvae.artifacts import file_digest, fingerprint_items, hash_fraction
from kerasvae.config import ConfigError, field, show
from kerasvae.data.sources.base import (DIRECTORY, DataError, Source, chunk_rows,
                                        require_directory)

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass
class ImageFolderConfig:
  """A directory of PNG/JPEG files, optionally in one subfolder per class."""
  root: str = field("", help="Directory of images.")
  labels_from_subfolders: bool = field(
      True, help="Use the sorted subfolder names as classes (when there are subfolders).")
  resize: Optional[list[int]] = field(
      None, range=(1, None), help="[height, width] to resize every image to, or null.")
  channels: Optional[int] = field(
      None, choices=(1, 3), help="1 (grey) or 3 (RGB); null: from the first image.")
  on_bad_file: str = field(
      "fail", choices=("fail", "skip"), help="A file that is not a readable image: fail or skip.")
  # Left out of the fingerprint while unset (omit_none), so existing runs keep their artifacts.
  alpha: Optional[str] = field(
      None, choices=("refuse", "composite"), omit_none=True,
      help="An image with transparent pixels: refuse it (a bad file) or composite it onto "
      "`background`; null: refuse. Fully opaque alpha is dropped either way.")
  background: Optional[float] = field(
      None, range=(0.0, 1.0), omit_none=True,
      help="alpha=composite: the grey level (0 black, 1 white) behind transparent pixels; "
      "null: 0.")

  def validate(self):
    if self.background is not None and self.alpha != "composite":
      raise ConfigError("background: expected only with alpha=composite. Received: "
                        f"background={self.background}, alpha={self.alpha}")
    if self.resize is not None and len(self.resize) != 2:
      raise ConfigError(f"Expected resize=[height, width]. Received: resize={show(self.resize)}")


def _printable(text):
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:
    return False
  return True


class _BadImage(Exception):
  """A file the image decoder refuses; the message is the `Received:` part."""


# What a PNG's IHDR colour type holds, for the statistics.
_PNG_COLOURS = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
_JPEG_MODES = {"L": "grey", "RGB": "RGB", "CMYK": "CMYK", "YCbCr": "YCbCr", "1": "1-bit grey"}


def png_header(path):
  """`(bit depth, colour type)` from a PNG's IHDR, or None if `path` does not start like one."""
  try:
    with open(path, "rb") as f:
      head = f.read(26)
  except OSError:
    return None
  if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
    return None
  return head[24], head[25]


def png_bit_depth(path):
  """The bit depth of a PNG's samples (1, 2, 4, 8 or 16), or None if `path` is not a PNG."""
  header = png_header(path)
  return header and header[0]


class _ImageDecoder:
  """Decodes PNG/JPEG files at their real bit depth and channel count.

  PNGs go through TensorFlow's libpng decoder at their own depth (Pillow cuts 16-bit colour
  to 8 bits): 1-, 2-, 4- and 8-bit samples as uint8 0..255, 16-bit ones as uint16, palettes
  looked up (with their transparency as alpha). JPEGs go through Pillow (8 bits). Pixels come
  out [H, W, C] as uint8 (0..255) or, with `floats` (a folder holding a 16-bit PNG), float32
  value / white (65535 or 255). Alpha: fully opaque alpha is dropped; transparent pixels are
  refused or composited onto `background` (`alpha`). Each image is described for the
  statistics (`"16-bit RGBA, alpha composited"`).

  Memory, one image at a time: the file's bytes, the decoded samples (H·W·C bytes, twice that
  at 16 bits: used in place, not copied), and float32 working copies only where a value changes
  (16-bit scaling, compositing, colour to grey, resizing): at most two, 4 bytes a sample each.
  """

  def __init__(self, channels, size, floats, alpha, background):
    self.channels = channels  # None: from the first image
    self.size = size  # (height, width) or None
    self.floats = floats
    self.alpha = alpha
    self.background = float(background)

  def decode(self, path):
    from PIL import Image, UnidentifiedImageError  # pylint: disable=import-outside-toplevel
    try:
      # A decompression bomb (an image whose header declares more than Image.MAX_IMAGE_PIXELS)
      # is refused before its pixels are decoded: the warning is made an error.
      with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
          if img.format == "PNG":
            header = png_header(path)
          else:
            img.load()
            return self._finish(*self._jpeg_pixels(img))
      return self._finish(*self._png_pixels(path, *header))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
      raise _BadImage(f"a decompression bomb ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
      raise _BadImage(f"an unreadable image ({type(e).__name__}: {e})") from None

  def _jpeg_pixels(self, img):
    mode = img.mode
    described = "8-bit " + _JPEG_MODES.get(mode, mode)
    img = img.convert("L" if mode in ("1", "L") else "RGB")
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels.reshape(pixels.shape[0], pixels.shape[1], -1), 255, described

  def _png_pixels(self, path, depth, colour):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    data = Path(path).read_bytes()
    try:
      decoded = tf.io.decode_png(data, channels=0,
                                 dtype=tf.uint16 if depth == 16 else tf.uint8)  # [H, W, C]
    except tf.errors.OpError as e:
      raise _BadImage(f"an unreadable image ({type(e).__name__}: {e.message})") from None
    del data
    described = f"{depth}-bit {_PNG_COLOURS.get(colour, f'colour type {colour}')}"
    # The tensor's own buffer (read-only), not a copy.
    return np.asarray(decoded), 65535 if depth == 16 else 255, described

  def _finish(self, pixels, white, described):
    """Alpha, channels, size and stored type of decoded `pixels` [H, W, C] (0..white)."""
    c = pixels.shape[-1]
    if c in (2, 4):
      transparent = int(np.count_nonzero(pixels[..., -1] < white))
      if transparent and self.alpha == "refuse":
        raise _BadImage(
            f"a {described} image with {transparent} transparent pixels: its alpha would be "
            "lost. Set image_folder.alpha=composite (and image_folder.background) to composite "
            "it, or remove the alpha channel")
      if transparent:
        described += ", alpha composited"
        alpha = pixels[..., -1:].astype(np.float32) / np.float32(white)  # [H, W, 1]
        colour = pixels[..., :-1].astype(np.float32)
        colour *= alpha
        colour += np.float32(self.background * white) * (1 - alpha)
        del alpha
        pixels = colour  # [H, W, C - 1], 0..white
      else:
        described += ", opaque alpha dropped"
        pixels = pixels[..., :-1]
      c -= 1
    channels = self.channels = self.channels or (1 if c == 1 else 3)
    if c == 3 and channels == 1:
      pixels = self._luma(pixels)
    elif c == 1 and channels == 3:
      pixels = np.repeat(pixels, 3, axis=-1)
    if self.size is not None and pixels.shape[:2] != tuple(self.size):
      pixels = self._resize(pixels, white)
    if self.floats:
      return (pixels.astype(np.float32) / np.float32(white)), described
    if pixels.dtype != np.uint8:  # composited or 16-bit in an 8-bit folder (not possible)
      pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels), described

  @staticmethod
  def _luma(rgb):
    """ITU-R 601-2 luma, [H, W, 3] -> [H, W, 1]; for uint8 exactly as Pillow's "L"."""
    if rgb.dtype == np.uint8:  # Pillow's fixed point: (19595 R + 38470 G + 7471 B + 2^15) >> 16
      weights = np.array([19595, 38470, 7471], np.uint32)
      return ((rgb @ weights + (1 << 15)) >> 16).astype(np.uint8)[..., None]
    return rgb.astype(np.float32) @ np.array([[0.299], [0.587], [0.114]], np.float32)

  def _resize(self, pixels, white):
    """Bilinear resizing to `size`: uint8 through Pillow's L/RGB (as before), others per
    channel in float."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    h, w = self.size
    if pixels.dtype == np.uint8:
      img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
      return np.asarray(img.resize((w, h), Image.BILINEAR)).reshape(h, w, -1)
    return np.stack([np.asarray(Image.fromarray(np.asarray(pixels[..., i], np.float32), mode="F")
                                .resize((w, h), Image.BILINEAR))
                     for i in range(pixels.shape[-1])], -1)


class ImageFolderSource(Source):
  """PNG/JPEG files in a directory, optionally one subfolder per class.

  Pixels are read file by file and the content hash is made file by file; the listing (a path
  and a label per file, in the stored order) is held, about 370 bytes a file.
  """
  name = "image_folder"
  settings = ImageFolderConfig
  block_in_every_config = True
  path_fields = {"root": DIRECTORY}
  required = ("root",)

  def __init__(self, config):
    super().__init__(config)
    root = require_directory(config.root, "image_folder.root", hint=False)
    self.root = root
    self.location = str(root)
    real_root = root.resolve()
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and self._inside(p, real_root))
    self.use_classes = bool(config.labels_from_subfolders and subdirs)
    if self.use_classes:
      self.label_names = subdirs
      self.files = []
      for label, name in enumerate(subdirs):
        self.files += [(p, label) for p in sorted((root / name).rglob("*"))
                       if p.is_file() and not p.name.startswith(".")
                       and self._inside(p, real_root)]
    else:
      self.files = [(p, None) for p in sorted(root.rglob("*"))
                    if p.is_file() and not p.name.startswith(".") and self._inside(p, real_root)]
    # Stored in an order that mixes the classes (a stable hash of each path), not class by
    # class: a split past the reader's in-memory budget is shuffled through a buffer that
    # would otherwise hold one class at a time.
    self.files = self._decodable_names(self.files)
    order = hash_fraction([p.relative_to(root).as_posix() for p, _ in self.files], "order")
    self.files = [self.files[i] for i in np.argsort(order, kind="stable")]
    self._has_16_bit = None

  def _decodable_names(self, files):
    """`files` without those whose names are not valid UTF-8 (refused, or skipped with
    on_bad_file=skip): a name is a key of the split hash and of the metadata, written as text."""
    kept = []
    for path, label in files:
      name = str(path.relative_to(self.root))
      try:
        name.encode("utf-8")
      except UnicodeEncodeError:
        raw = os.fsencode(name)
        self._bad(path, f"a file name that is not valid UTF-8 ({raw!r}): rename the file")
        continue
      kept.append((path, label))
    return kept

  def _inside(self, path, real_root):
    """True; a DataError if `path` is a symbolic link, or in one, that leads out of the root.

    Links that stay inside the root are read (a root that is itself a link is the user's
    choice); one that leads out would read whatever it names (a system folder) as images.
    """
    if not path.is_symlink() and not path.parent.is_symlink():
      return True  # rglob does not enter linked folders below the one it starts from
    real = path.resolve()
    if real.is_relative_to(real_root):
      return True
    raise DataError(f"{path}: expected a file or folder inside image_folder.root={self.root}: "
                    f"symbolic links are followed only within it. Received: a link to {real}")

  def content_hash(self):
    items = ((str(p.relative_to(self.root)), label, file_digest(p)) for p, label in self.files)
    if self._sixteen_bit():  # an artifact ingested before 16-bit PNGs were read at 16 bits differs
      items = itertools.chain([("decoded", "16-bit PNG / 65535")], items)
    return fingerprint_items(items)

  def _bad(self, path, reason):
    path = repr(str(path))[1:-1] if not _printable(str(path)) else path
    message = (f"{path}: expected a PNG or JPEG image (image_folder.on_bad_file="
               f"{self.config.on_bad_file!r}). Received: {reason}")
    if self.config.on_bad_file == "fail":
      raise DataError(message)
    warnings.warn(f"Skipping {message}", stacklevel=3)
    logger.warning("Skipping %s", message)

  def _sixteen_bit(self):
    """Whether any PNG of the folder stores 16 bits per sample (read from the headers)."""
    if self._has_16_bit is None:
      self._has_16_bit = any(png_bit_depth(p) == 16 for p, _ in self.files
                             if p.suffix.lower() == ".png")
    return self._has_16_bit

  def chunks(self, use_source_splits=False):
    c = self.config
    size = tuple(c.resize) if c.resize else None  # (height, width)
    # One stored type for the folder: uint8 when every image has 8 bits, float32 (value / white)
    # as soon as one PNG has 16, so that no image is cut to 8 bits and none is mixed up.
    floats = self._sixteen_bit()
    decoder = _ImageDecoder(c.channels, size, floats, c.alpha or "refuse", c.background or 0.0)
    first = None
    buf = {"images": [], "labels": [], "keys": [], "formats": []}
    for path, label in self.files:
      if path.suffix.lower() not in IMAGE_EXTENSIONS:
        self._bad(path, f"a file with extension {path.suffix!r}")
        continue
      try:
        pixels, described = decoder.decode(path)  # [H, W, C]
      except _BadImage as e:
        self._bad(path, str(e))
        continue
      if first is None:
        first = (path, pixels.shape)
        rows = chunk_rows(pixels.nbytes)
      elif pixels.shape != first[1]:
        raise DataError(f"{path}: expected an image of {first[1][0]}x{first[1][1]} pixels like "
                        f"{first[0]}, or image_folder.resize set. Received: "
                        f"{pixels.shape[0]}x{pixels.shape[1]}")
      buf["images"].append(pixels)
      buf["labels"].append(label)
      buf["keys"].append(str(path.relative_to(self.root)))
      buf["formats"].append(described)
      del pixels  # the buffer holds the only reference: a flushed chunk frees it
      if len(buf["images"]) == rows:
        yield None, self._flush(buf)
    if buf["images"]:
      yield None, self._flush(buf)

  def _flush(self, buf):
    images = buf["images"]
    # One image per chunk (a large one) is used as it is: stacking would copy it.
    chunk = {"images": images[0][None] if len(images) == 1 else np.stack(images),
             "keys": np.array(buf["keys"]), "formats": np.array(buf["formats"])}
    if self.use_classes:
      chunk["labels"] = np.array(buf["labels"], np.int64)
    for v in buf.values():
      v.clear()
    return chunk
