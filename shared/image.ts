/**
 * Image I/O through sharp: decode any supported photo to 8-bit sRGB RGB (EXIF orientation applied,
 * alpha flattened onto white), encode raw pixels to PNG/JPEG, and a few raw-pixel helpers.
 *
 * decodeImage is the single gate for untrusted input: every failure is an InputError whose message
 * starts with the file name and says what is wrong, e.g. `photo.jpg: truncated or corrupt JPEG (...)`.
 */
import sharp, { type Metadata, type OutputInfo, type Sharp } from "sharp";
import { InputError } from "./errors.js";
import type { Mask, RgbImage } from "./types.js";

/** A decoded photo: 8-bit sRGB RGB pixels in display orientation. */
export interface DecodedImage extends RgbImage {
  /** Container format as sharp names it: "jpeg", "png", "webp", "gif", "tiff", "heif". */
  format: string;
  /** Width and height as stored in the file, before EXIF orientation. */
  sourceWidth: number;
  sourceHeight: number;
  /** The EXIF orientation (1-8) that was applied; 1 when the file has none. */
  orientation: number;
}

export interface DecodeOptions {
  /** Reject images with more pixels than this (read from the header, before decoding). */
  maxPixels?: number;
  /** Reject images whose shorter side is below this many pixels. */
  minSide?: number;
}

/** Default decompression-bomb guard: 100 megapixels (a 12000 x 8333 photo). */
export const DEFAULT_MAX_PIXELS = 100_000_000;
/**
 * Default minimum side. Anything smaller cannot hold an object worth masking (SAM works at 1024 px,
 * so a 16 px image is already upscaled 64x); such files are usually icons or tracking pixels.
 */
export const DEFAULT_MIN_SIDE = 16;

/** Formats accepted as photos. SVG/PDF and other document formats are refused on purpose. */
const PHOTO_FORMATS = new Set(["jpeg", "png", "webp", "gif", "tiff", "heif"]);

/** Raw interleaved 8-bit pixels with 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels. */
export interface RawPixels {
  data: Uint8Array;
  width: number;
  height: number;
  /** Inferred from data.length when absent. */
  channels?: 1 | 2 | 3 | 4;
}

/**
 * Decode untrusted image bytes to 8-bit sRGB RGB.
 *
 * - EXIF orientation is applied first; width/height are the displayed (oriented) size.
 * - CMYK, greyscale, palette, 16-bit and ICC-tagged images are converted to 8-bit sRGB.
 * - Transparency is flattened onto white (catalog photos are shown on white; RGB is what the
 *   detector, SAM and the generators take).
 * - Animated GIF/WebP: the first frame only.
 * - failOn "error": truncated or corrupt files fail instead of decoding with grey blocks, while
 *   JPEGs with recoverable damage (e.g. "extraneous bytes before marker"), which every viewer
 *   opens, still decode: a catalog is full of them.
 */
export async function decodeImage(bytes: Buffer, name: string, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const minSide = opts.minSide ?? DEFAULT_MIN_SIDE;
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) throw new RangeError(`decodeImage: maxPixels must be a positive integer, got ${maxPixels}`);
  if (!Number.isInteger(minSide) || minSide < 1) throw new RangeError(`decodeImage: minSide must be a positive integer, got ${minSide}`);
  if (bytes.length === 0) throw new InputError(`${name}: empty file (0 bytes)`);

  // Header only: no pixel data is decoded here. The pixel limit is lifted so the true size can be
  // reported; the check below applies it.
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false, failOn: "error" }).metadata();
  } catch (err) {
    throw new InputError(`${name}: ${describeHeaderError(err, bytes)}`, { cause: err });
  }
  const format = String(meta.format);
  if (!PHOTO_FORMATS.has(format)) {
    throw new InputError(`${name}: unsupported image format "${format}" (expected JPEG, PNG, WebP, GIF, TIFF or HEIF/AVIF)`);
  }
  const { width: sourceWidth, height: sourceHeight } = meta;
  const pixels = sourceWidth * sourceHeight;
  if (pixels > maxPixels) {
    throw new InputError(
      `${name}: image is ${sourceWidth}x${sourceHeight} (${megapixels(pixels)} MP), over the ${megapixels(maxPixels)} MP limit ` +
        `(refused before decoding, as a decompression-bomb guard)`,
    );
  }
  if (Math.min(sourceWidth, sourceHeight) < minSide) {
    throw new InputError(`${name}: image is ${sourceWidth}x${sourceHeight} px, smaller than the ${minSide}x${minSide} minimum`);
  }

  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await sharp(bytes, { failOn: "error", limitInputPixels: maxPixels, autoOrient: true, pages: 1 })
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace("srgb")
      .removeAlpha()
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    const detail = sharpDetail(err);
    const what = /premature|truncat|end of|read error|crc|corrupt|invalid|damaged|bad /i.test(detail)
      ? `truncated or corrupt ${formatLabel(format)}`
      : `could not decode this ${formatLabel(format)}`;
    throw new InputError(`${name}: ${what} (${detail})`, { cause: err });
  }
  const { info } = out;
  if (info.channels !== 3) {
    // sharp guarantees 3 after srgb + removeAlpha; anything else is a bug in this function.
    throw new Error(`decodeImage(${name}): expected 3 channels after conversion, got ${info.channels}`);
  }
  return {
    data: new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength),
    width: info.width,
    height: info.height,
    format,
    sourceWidth,
    sourceHeight,
    orientation: meta.orientation ?? 1,
  };
}

/** Number of channels of raw pixels: explicit, else inferred from the buffer length. */
export function channelsOf(img: RawPixels): 1 | 2 | 3 | 4 {
  const { data, width, height } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`invalid image size ${width}x${height}`);
  }
  const n = width * height;
  const channels = img.channels ?? (data.length / n);
  if (channels !== 1 && channels !== 2 && channels !== 3 && channels !== 4) {
    throw new RangeError(`pixel buffer of ${data.length} bytes does not fit ${width}x${height} with 1-4 channels`);
  }
  if (data.length !== n * channels) {
    throw new RangeError(`pixel buffer of ${data.length} bytes, expected ${n * channels} for ${width}x${height}x${channels}`);
  }
  return channels;
}

/** A sharp pipeline over raw pixels (RGB image, mask, or any RawPixels). */
export function sharpRaw(img: RawPixels): Sharp {
  const channels = channelsOf(img);
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels } });
}

/** Encode to PNG: a Mask becomes 8-bit grey, an RgbImage RGB, RGBA keeps its alpha. */
export async function encodePng(img: RgbImage | Mask | RawPixels): Promise<Buffer> {
  let pipeline = sharpRaw(img);
  // sharp writes sRGB unless told otherwise; keep one-channel data (masks) grey.
  if (channelsOf(img) <= 2) pipeline = pipeline.toColourspace("b-w");
  return pipeline.png({ compressionLevel: 6 }).toBuffer();
}

/** Encode to baseline JPEG (quality 1-100, default 90). Alpha, if any, is flattened onto white. */
export async function encodeJpeg(img: RgbImage | Mask | RawPixels, quality = 90): Promise<Buffer> {
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`JPEG quality must be an integer 1-100, got ${quality}`);
  }
  return sharpRaw(img).flatten({ background: { r: 255, g: 255, b: 255 } }).jpeg({ quality }).toBuffer();
}

/** Cutout: the image's RGB with the mask as alpha (0 = transparent background). */
export function rgbaFrom(image: RgbImage, mask: Mask): RawPixels {
  assertSameSize(image, mask, "rgbaFrom");
  const n = image.width * image.height;
  const src = image.data;
  const alpha = mask.data;
  const out = new Uint8Array(n * 4);
  for (let i = 0, s = 0, d = 0; i < n; i++, s += 3, d += 4) {
    out[d] = src[s]!;
    out[d + 1] = src[s + 1]!;
    out[d + 2] = src[s + 2]!;
    out[d + 3] = alpha[i]!;
  }
  return { data: out, width: image.width, height: image.height, channels: 4 };
}

/**
 * Resize an RGB image. "fill" stretches to exactly width x height; "cover" scales to cover and
 * centre-crops; "contain" letterboxes onto white; "inside" keeps the aspect ratio within the box
 * (so the result may be smaller than asked in one dimension).
 */
export async function resizeRgb(
  img: RgbImage,
  width: number,
  height: number,
  fit: "fill" | "cover" | "contain" | "inside" = "fill",
): Promise<RgbImage> {
  const { data, info } = await sharpRaw({ ...img, channels: 3 })
    .resize(width, height, { fit, position: "centre", background: { r: 255, g: 255, b: 255 } })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

/** Throw a RangeError (a caller bug, not bad input) when two pixel grids differ in size. */
export function assertSameSize(a: { width: number; height: number }, b: { width: number; height: number }, what: string): void {
  if (a.width !== b.width || a.height !== b.height) {
    throw new RangeError(`${what}: size mismatch ${a.width}x${a.height} vs ${b.width}x${b.height}`);
  }
}

function megapixels(pixels: number): string {
  return (pixels / 1e6).toFixed(pixels < 1e7 ? 1 : 0);
}

function formatLabel(format: string): string {
  return ({ jpeg: "JPEG", png: "PNG", webp: "WebP", gif: "GIF", tiff: "TIFF", heif: "HEIF/AVIF" } as Record<string, string>)[format] ?? format;
}

/** The first line of a sharp/libvips error, which is the informative part. */
function sharpDetail(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split("\n")[0]!.trim();
}

/** Why the header could not be read, in words a user can act on. */
function describeHeaderError(err: unknown, bytes: Buffer): string {
  const detail = sharpDetail(err);
  if (/unsupported image format/i.test(detail)) {
    return `not an image or an unsupported format (${bytes.length} bytes starting ${JSON.stringify(preview(bytes))})`;
  }
  return `unreadable or corrupt image header (${detail})`;
}

/** The first bytes as printable text, to show what a non-image file actually is. */
function preview(bytes: Buffer): string {
  const head = bytes.subarray(0, 16);
  let s = "";
  for (const b of head) s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".";
  return bytes.length > 16 ? `${s}...` : s;
}
