/**
 * What the Bedrock image models share: fitting an image and its mask to a model's size rules,
 * the Bedrock mask form, and bringing a result back to the original size with the region that
 * must not change pasted back from the original.
 *
 * Fitting, in this order (SizePlan records each step, so the way back is exact):
 * 1. Padding, only when the aspect ratio is beyond the model's limit: the short dimension is
 *    extended on both sides (mirrored pixels, mask "outside") until the ratio is within it.
 *    Outpainting regenerates the padding, inpainting keeps it; it is cropped off afterwards.
 * 2. Scaling, uniformly, down to the longest side / pixel count allowed, or up to the shortest
 *    side allowed.
 * 3. Rounding each side to the model's multiple (Nova: 16): a stretch of at most half a multiple
 *    per side, undone by the way back.
 * The way back resizes the model's output to the padded canvas, crops the padding off, and
 * blends it with the original through the mask (pasteBack).
 *
 * Size rules (Amazon Bedrock user guide):
 * - Titan Image Generator G1 v1/v2 ("Amazon Titan Image Generator G1 models", model card and
 *   inference parameters): image and mask <= 1,408 px on the longer side for inpainting and
 *   outpainting, JPEG or PNG, input image <= 5 MB. The guide gives no minimum for editing
 *   inputs; we apply 320 px (the smallest side of Titan's documented output sizes) so that no
 *   tiny image is sent, which also bounds the aspect ratio to 1408:320 = 4.4.
 * - Nova Canvas ("Image generation and editing", supported image resolutions): each side
 *   320-4,096 px and divisible by 16, aspect ratio between 1:4 and 4:1, fewer than 4,194,304
 *   pixels in all.
 *
 * All functions are pure (they return new images) and deterministic.
 */
import sharp from "sharp";
import { InputError } from "../runtime/errors.js";
import { assertSameSize, encodePng, resizeRgb, sharpRaw } from "../imaging/image.js";
import { toBedrockMask } from "../imaging/mask-ops.js";
import type { Mask, RgbImage } from "../imaging/types.js";

export interface SizeRules {
  /** Who the rules are for, for messages. */
  label: string;
  /** Each side at least this many pixels. */
  minSide: number;
  /** Each side at most this many pixels. */
  maxSide: number;
  /** Each side a multiple of this (1 = any). */
  multiple: number;
  /** Longer side / shorter side at most this. */
  maxAspect: number;
  /** width * height strictly below this. */
  maxPixelsExclusive: number;
  /** The encoded input image at most this many bytes (before base64), when the model limits it. */
  maxImageBytes?: number;
}

export const TITAN_SIZE_RULES: SizeRules = {
  label: "Titan Image Generator",
  minSide: 320,
  maxSide: 1408,
  multiple: 1,
  maxAspect: 1408 / 320,
  maxPixelsExclusive: Number.POSITIVE_INFINITY,
  maxImageBytes: 5_000_000,
};

/**
 * Stability AI Image Services on Bedrock: PNG, JPEG or WebP, each side at least 64 px, at most
 * 9,437,184 pixels, aspect ratio between 1:2.5 and 2.5:1 (Stability's Bedrock documentation).
 */
export const STABILITY_SIZE_RULES: SizeRules = {
  label: "Stability AI Image Services",
  minSide: 64,
  maxSide: 9_437_184 / 64,
  multiple: 1,
  maxAspect: 2.5,
  maxPixelsExclusive: 9_437_184 + 1,
};

export const NOVA_SIZE_RULES: SizeRules = {
  label: "Nova Canvas",
  minSide: 320,
  maxSide: 4096,
  multiple: 16,
  maxAspect: 4,
  maxPixelsExclusive: 4_194_304,
};

/** Why width x height breaks the rules, or null when it fits them. */
export function checkSize(rules: SizeRules, width: number, height: number): string | null {
  const size = `${width}x${height}`;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) return `${size} is not a valid image size`;
  if (Math.min(width, height) < rules.minSide) return `${size}: each side must be at least ${rules.minSide} px for ${rules.label}`;
  if (Math.max(width, height) > rules.maxSide) return `${size}: each side must be at most ${rules.maxSide} px for ${rules.label}`;
  if (width % rules.multiple !== 0 || height % rules.multiple !== 0) {
    return `${size}: each side must be divisible by ${rules.multiple} for ${rules.label}`;
  }
  if (width > rules.maxAspect * height || height > rules.maxAspect * width) {
    return `${size}: aspect ratio beyond 1:${round2(rules.maxAspect)}-${round2(rules.maxAspect)}:1 for ${rules.label}`;
  }
  if (width * height >= rules.maxPixelsExclusive) return `${size}: must have fewer than ${rules.maxPixelsExclusive} pixels for ${rules.label}`;
  return null;
}

/** How an image of width x height is fitted to a model, and back. */
export interface SizePlan {
  /** The original size. */
  width: number;
  height: number;
  /** The original padded to an allowed aspect ratio (original pixels); equal to width/height when no padding. */
  canvasWidth: number;
  canvasHeight: number;
  /** Where the original sits on the canvas. */
  offsetX: number;
  offsetY: number;
  /** The size sent to the model: the canvas scaled (and rounded to the model's multiple). */
  sentWidth: number;
  sentHeight: number;
}

/**
 * The plan for an image of width x height. `maxLongSide` tightens the rules' longest side (used to
 * shrink an image whose encoding is over the model's byte limit). The result always passes
 * checkSize(rules, sentWidth, sentHeight).
 */
export function planSize(rules: SizeRules, width: number, height: number, maxLongSide = rules.maxSide): SizePlan {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`planSize: invalid image size ${width}x${height}`);
  }
  const m = rules.multiple;
  const lo = Math.ceil(rules.minSide / m) * m;
  const hi = Math.floor(Math.min(rules.maxSide, Math.max(maxLongSide, rules.minSide)) / m) * m;

  // 1. Pad the short dimension up to the aspect limit (a little inside it, so rounding cannot cross it).
  const aspect = rules.maxAspect * 0.99;
  let canvasWidth = width;
  let canvasHeight = height;
  if (width > rules.maxAspect * height) canvasHeight = Math.ceil(width / aspect);
  else if (height > rules.maxAspect * width) canvasWidth = Math.ceil(height / aspect);
  const offsetX = Math.floor((canvasWidth - width) / 2);
  const offsetY = Math.floor((canvasHeight - height) / 2);

  // 2. One scale factor: down to the longest side and pixel count, up to the shortest side.
  const long = Math.max(canvasWidth, canvasHeight);
  const short = Math.min(canvasWidth, canvasHeight);
  const down = Math.min(hi / long, Math.sqrt((rules.maxPixelsExclusive * 0.998) / (canvasWidth * canvasHeight)));
  let s = Math.min(1, down);
  if (short * s < lo) s = lo / short;

  // 3. Round to the multiple, within the side limits; then settle the rare rounding conflicts.
  const fit = (v: number): number => Math.min(hi, Math.max(lo, Math.round((v * s) / m) * m));
  let sentWidth = s === 1 && m === 1 ? canvasWidth : fit(canvasWidth);
  let sentHeight = s === 1 && m === 1 ? canvasHeight : fit(canvasHeight);
  for (let i = 0; i < 64 && checkSize(rules, sentWidth, sentHeight) !== null; i++) {
    const wide = sentWidth >= sentHeight;
    const tooMany = sentWidth * sentHeight >= rules.maxPixelsExclusive;
    const tooNarrow = Math.max(sentWidth, sentHeight) > rules.maxAspect * Math.min(sentWidth, sentHeight);
    if (tooNarrow && !tooMany && Math.min(sentWidth, sentHeight) + m <= hi) {
      if (wide) sentHeight += m;
      else sentWidth += m;
    } else if (wide) sentWidth -= m;
    else sentHeight -= m;
  }
  const problem = checkSize(rules, sentWidth, sentHeight);
  if (problem) throw new Error(`planSize: no size for ${width}x${height} within the ${rules.label} rules (${problem})`);
  return { width, height, canvasWidth, canvasHeight, offsetX, offsetY, sentWidth, sentHeight };
}

/** The image (and mask) as the model gets them. */
export interface ModelInput {
  plan: SizePlan;
  /** The image to send, sentWidth x sentHeight. */
  image: RgbImage;
  /** The Bedrock mask (RGB, black = object, white = the rest), same size as `image`; absent without a mask. */
  bedrockMask?: RgbImage;
}

/** Pads, scales and rounds `image` (and `mask`) per `plan`. The mask is thresholded at 128 after scaling. */
export async function toModelInput(image: RgbImage, mask: Mask | undefined, plan: SizePlan): Promise<ModelInput> {
  if (image.width !== plan.width || image.height !== plan.height) {
    throw new RangeError(`toModelInput: image is ${image.width}x${image.height}, the plan is for ${plan.width}x${plan.height}`);
  }
  if (mask) assertSameSize(image, mask, "toModelInput");
  const sent = await fitImage(image, plan);
  if (!mask) return { plan, image: sent };
  return { plan, image: sent, bedrockMask: toBedrockMask(await fitMask(mask, plan)) };
}

/** The image as the model gets it per `plan`: padded by mirroring, scaled and rounded. */
export async function fitImage(image: RgbImage, plan: SizePlan): Promise<RgbImage> {
  return resizeIfNeeded(padReflect(image, 3, plan), plan.sentWidth, plan.sentHeight);
}

/** The object mask per `plan`, soft values kept: the padding is background (0), then scaled. */
export async function fitMask(mask: Mask, plan: SizePlan): Promise<Mask> {
  assertSameSize(plan, mask, "fitMask");
  return resizeMaskIfNeeded(padConstant(mask, plan, 0), plan.sentWidth, plan.sentHeight);
}

/** The model's output (any size; normally sentWidth x sentHeight) at the original size: scaled to the canvas, padding cropped off. */
export async function fromModelOutput(output: RgbImage, plan: SizePlan): Promise<RgbImage> {
  const canvas = await resizeIfNeeded(output, plan.canvasWidth, plan.canvasHeight);
  if (plan.canvasWidth === plan.width && plan.canvasHeight === plan.height) return canvas;
  return crop(canvas, plan.offsetX, plan.offsetY, plan.width, plan.height);
}

/**
 * The generated image with the region that must not change taken from the original: outpaint
 * keeps the object (mask 255), inpaint the background (mask 0). Where the mask is 255 (outpaint)
 * or 0 (inpaint) the result is the original pixel exactly; where it is 0 (outpaint) or 255
 * (inpaint) it is the generated pixel; the soft values between (a feathered edge) blend the two
 * linearly.
 */
export function pasteBack(original: RgbImage, generated: RgbImage, mask: Mask, mode: "outpaint" | "inpaint"): RgbImage {
  assertSameSize(original, generated, "pasteBack");
  assertSameSize(original, mask, "pasteBack");
  const out = new Uint8Array(original.data.length);
  const o = original.data;
  const g = generated.data;
  const m = mask.data;
  const invert = mode === "inpaint";
  for (let i = 0, j = 0; i < m.length; i++, j += 3) {
    const keep = invert ? 255 - m[i]! : m[i]!;
    if (keep === 255) {
      out[j] = o[j]!;
      out[j + 1] = o[j + 1]!;
      out[j + 2] = o[j + 2]!;
    } else if (keep === 0) {
      out[j] = g[j]!;
      out[j + 1] = g[j + 1]!;
      out[j + 2] = g[j + 2]!;
    } else {
      const k = 255 - keep;
      out[j] = div255(o[j]! * keep + g[j]! * k);
      out[j + 1] = div255(o[j + 1]! * keep + g[j + 1]! * k);
      out[j + 2] = div255(o[j + 2]! * keep + g[j + 2]! * k);
    }
  }
  return { data: out, width: original.width, height: original.height };
}

/** The encoded request images: base64 PNGs of the image and (when given) the Bedrock mask. */
export interface EncodedModelInput {
  plan: SizePlan;
  imageBase64: string;
  maskBase64?: string;
}

/**
 * planSize + toModelInput + PNG/base64. When the rules limit the encoded image's bytes and the
 * PNG is over, the image is planned smaller (about by the square root of the excess) and encoded
 * again; an InputError when it cannot get under the limit at the smallest allowed size.
 */
export async function encodeModelInput(image: RgbImage, mask: Mask | undefined, rules: SizeRules): Promise<EncodedModelInput> {
  let maxLong = rules.maxSide;
  for (let attempt = 0; attempt < 6; attempt++) {
    const plan = planSize(rules, image.width, image.height, maxLong);
    const input = await toModelInput(image, mask, plan);
    const png = await encodePng(input.image);
    const long = Math.max(plan.sentWidth, plan.sentHeight);
    if (rules.maxImageBytes === undefined || png.length <= rules.maxImageBytes) {
      return {
        plan,
        imageBase64: png.toString("base64"),
        ...(input.bedrockMask ? { maskBase64: (await encodePng(input.bedrockMask)).toString("base64") } : {}),
      };
    }
    if (long <= rules.minSide) break;
    maxLong = Math.max(rules.minSide, Math.floor(long * Math.sqrt(rules.maxImageBytes / png.length) * 0.95));
  }
  throw new InputError(`image ${image.width}x${image.height} does not encode within ${rules.label}'s ${rules.maxImageBytes} byte limit at any allowed size`);
}

/** Decodes a base64 PNG/JPEG from a model response to RGB; a plain (transient) Error when it is not an image. */
export async function decodeModelImage(base64: string, what: string): Promise<RgbImage> {
  const bytes = Buffer.from(base64, "base64");
  try {
    const { data, info } = await sharp(bytes, { failOn: "error" })
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace("srgb")
      .removeAlpha()
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels, got ${info.channels}`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
  } catch (err) {
    throw new Error(`${what}: the returned image (${bytes.length} bytes) does not decode (${(err as Error).message.split("\n")[0]})`, { cause: err });
  }
}

/** The image on the plan's canvas, the padding filled by mirroring the image at its edges. */
function padReflect(img: RgbImage, channels: 3, plan: SizePlan): RgbImage {
  const { canvasWidth: cw, canvasHeight: ch, offsetX: ox, offsetY: oy, width: w, height: h } = plan;
  if (cw === w && ch === h) return img;
  const out = new Uint8Array(cw * ch * channels);
  for (let y = 0; y < ch; y++) {
    const sy = reflect(y - oy, h);
    for (let x = 0; x < cw; x++) {
      const sx = reflect(x - ox, w);
      const s = (sy * w + sx) * channels;
      const d = (y * cw + x) * channels;
      for (let c = 0; c < channels; c++) out[d + c] = img.data[s + c]!;
    }
  }
  return { data: out, width: cw, height: ch };
}

/** The mask on the plan's canvas, the padding set to `value`. */
function padConstant(mask: Mask, plan: SizePlan, value: number): Mask {
  const { canvasWidth: cw, canvasHeight: ch, offsetX: ox, offsetY: oy, width: w, height: h } = plan;
  if (cw === w && ch === h) return mask;
  const out = new Uint8Array(cw * ch).fill(value);
  for (let y = 0; y < h; y++) out.set(mask.data.subarray(y * w, y * w + w), (y + oy) * cw + ox);
  return { data: out, width: cw, height: ch };
}

/** Index i folded into [0, n) by mirroring at the ends (..., 2, 1, 0, 1, 2, ..., n-1, n-2, ...). */
function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let r = ((i % period) + period) % period;
  if (r >= n) r = period - r;
  return r;
}

function crop(img: RgbImage, x0: number, y0: number, w: number, h: number): RgbImage {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const s = ((y + y0) * img.width + x0) * 3;
    out.set(img.data.subarray(s, s + w * 3), y * w * 3);
  }
  return { data: out, width: w, height: h };
}

async function resizeIfNeeded(img: RgbImage, width: number, height: number): Promise<RgbImage> {
  if (img.width === width && img.height === height) return img;
  return resizeRgb(img, width, height, "fill");
}

async function resizeMaskIfNeeded(mask: Mask, width: number, height: number): Promise<Mask> {
  if (mask.width === width && mask.height === height) return mask;
  const data = await sharpRaw({ ...mask, channels: 1 })
    .resize(width, height, { fit: "fill" })
    .toColourspace("b-w")
    .raw()
    .toBuffer();
  if (data.length !== width * height) throw new Error(`mask resize returned ${data.length} bytes, expected ${width * height}`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}

/** round(x / 255) for integers 0 <= x <= 255 * 255. */
function div255(x: number): number {
  const t = x + 128;
  return (t + (t >> 8)) >> 8;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** Characters of a prompt as the Bedrock limits count them (Unicode code points). */
export function textLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * The last step of every edit: the model's image (base64) back at the original size, with the
 * region that must not change pasted back from the original. Without a mask (the service found
 * the region from a maskPrompt) nothing is pasted back: the service's region is not ours.
 */
export async function finishEdit(original: RgbImage, mask: Mask | undefined, mode: "outpaint" | "inpaint", plan: SizePlan, outputBase64: string, what: string): Promise<RgbImage> {
  const output = await decodeModelImage(outputBase64, what);
  const restored = await fromModelOutput(output, plan);
  return mask ? pasteBack(original, restored, mask, mode) : restored;
}
