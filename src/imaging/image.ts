/**
 * Image I/O through sharp: decode any supported photo to 8-bit sRGB RGB (EXIF orientation applied,
 * alpha flattened onto white), encode raw pixels to PNG/JPEG, and a few raw-pixel helpers.
 *
 * decodeImage is the single gate for untrusted input: every failure is an InputError whose message
 * starts with the file name and says what is wrong, e.g. `photo.jpg: truncated or corrupt JPEG (...)`.
 */
import sharp, { type Metadata, type OutputInfo, type Sharp } from "sharp";
import { InputError } from "../runtime/errors.js";
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
    throw new InputError(`${name}: ${describeHeaderError(err, bytes, bytes.length)}`, { cause: err });
  }
  const format = String(meta.format);
  const { width: sourceWidth, height: sourceHeight } = meta;
  const refused = headerProblem({ format, width: sourceWidth, height: sourceHeight }, { maxPixels, minSide });
  if (refused) throw new InputError(`${name}: ${refused}`);

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
  const channels = img.channels ?? data.length / n;
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
  return sharpRaw(img)
    .flatten({ background: { r: 255, g: 255, b: 255 } })
    .jpeg({ quality })
    .toBuffer();
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
export async function resizeRgb(img: RgbImage, width: number, height: number, fit: "fill" | "cover" | "contain" | "inside" = "fill"): Promise<RgbImage> {
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

/**
 * What is wrong with an image, from its header (sharp's metadata), or null when it may be decoded:
 * not a photo format, over the pixel limit (a decompression-bomb guard), or too small.
 */
export function headerProblem(meta: { format: string; width: number; height: number }, opts: DecodeOptions = {}): string | null {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const minSide = opts.minSide ?? DEFAULT_MIN_SIDE;
  const { format, width, height } = meta;
  if (!PHOTO_FORMATS.has(format)) return `unsupported image format "${format}" (expected JPEG, PNG, WebP, GIF, TIFF or HEIF/AVIF)`;
  const pixels = width * height;
  if (pixels > maxPixels) {
    return `image is ${width}x${height} (${megapixels(pixels)} MP), over the ${megapixels(maxPixels)} MP limit (refused before decoding, as a decompression-bomb guard)`;
  }
  if (Math.min(width, height) < minSide) return `image is ${width}x${height} px, smaller than the ${minSide}x${minSide} minimum`;
  return null;
}

/**
 * Why the header could not be read, in words a user can act on. `head`: the file's first bytes
 * (a few KB are enough), `size`: its whole size. A file that is not an image is told by its kind
 * and size, never by its contents: reasons go to Redis, the status, the report and the logs.
 */
export function describeHeaderError(err: unknown, head: Uint8Array, size: number): string {
  const detail = sharpDetail(err);
  if (/unsupported image format/i.test(detail)) return `not an image or an unsupported format (${contentKind(head, size)}, ${size} bytes)`;
  return `unreadable or corrupt image header (${detail})`;
}

/**
 * Signatures of common files that are not photos: [offset, bytes there, what the file is, weak].
 * A weak one (two or three printable letters) names the file only when it is not text.
 */
const SIGNATURES: [offset: number, magic: string | number[], kind: string, weak?: true][] = [
  [0, "%PDF-", "PDF document"],
  [0, "PK\x03\x04", "ZIP archive"],
  [0, "PK\x05\x06", "ZIP archive"],
  [0, "\x7fELF", "ELF executable"],
  [0, [0xcf, 0xfa, 0xed, 0xfe], "Mach-O executable"],
  [0, [0xca, 0xfe, 0xba, 0xbe], "Mach-O or Java class file"],
  [0, "#!", "script"],
  [0, [0x1f, 0x8b], "gzip archive"],
  [0, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], "xz archive"],
  [0, [0x28, 0xb5, 0x2f, 0xfd], "zstd archive"],
  [0, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], "7-Zip archive"],
  [0, "Rar!\x1a\x07", "RAR archive"],
  [257, "ustar", "tar archive"],
  [0, "SQLite format 3\x00", "SQLite database"],
  [0, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1], "Microsoft Office (OLE) document"],
  [0, "{\\rtf", "RTF document"],
  [0, "-----BEGIN ", "PEM key or certificate"],
  [0, [0x00, 0x00, 0x01, 0x00], "ICO image (not supported)"],
  [0, "8BPS", "Photoshop PSD (not supported)"],
  [0, "\x00asm", "WebAssembly module"],
  [0, "OggS", "Ogg media"],
  [0, "fLaC", "FLAC audio"],
  [4, "ftyp", "MP4/QuickTime or other ISO media"],
  [0, [0x1a, 0x45, 0xdf, 0xa3], "Matroska/WebM video"],
  [0, "MZ", "Windows executable", true],
  [0, "BM", "BMP image (not supported)", true],
  [0, "BZh", "bzip2 archive", true],
  [0, "ID3", "MP3 audio", true],
];

/** Enough of a file to tell what it is. */
const SNIFF_BYTES = 4096;

/**
 * What a file that is not a decodable image is, from its first bytes (`size`: the whole file's,
 * when `head` is only its start): "PDF document", "text", "unknown binary".
 */
export function contentKind(head: Uint8Array, size = head.byteLength): string {
  const bytes = Buffer.from(head.buffer, head.byteOffset, Math.min(head.byteLength, SNIFF_BYTES));
  const matches = ([offset, magic]: (typeof SIGNATURES)[number]): boolean => {
    const m = typeof magic === "string" ? Buffer.from(magic, "latin1") : Buffer.from(magic);
    return bytes.length >= offset + m.length && bytes.subarray(offset, offset + m.length).equals(m);
  };
  const strong = SIGNATURES.find((sig) => !sig[3] && matches(sig));
  if (strong) return strong[2];
  if (bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))) return "text (UTF-16)";
  if (isText(bytes, size > bytes.length)) return "text";
  return SIGNATURES.find((sig) => sig[3] && matches(sig))?.[2] ?? "unknown binary";
}

/** Control characters that text files hold: tab, line feed, vertical tab, form feed, carriage return, escape. */
const TEXT_CONTROLS = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1b]);

/**
 * UTF-8 without other control characters. `sample`: the bytes are the start of a longer file, so
 * a character may be cut at their end.
 */
function isText(bytes: Buffer, sample: boolean): boolean {
  if (bytes.length === 0) return false;
  for (let cut = 0; cut <= (sample ? 3 : 0) && cut < bytes.length; cut++) {
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, bytes.length - cut));
    } catch {
      continue;
    }
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if ((c < 0x20 && !TEXT_CONTROLS.has(c)) || c === 0x7f) return false;
    }
    return true;
  }
  return false;
}
