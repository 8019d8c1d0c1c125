/**
 * The local "composite" generator (no cloud, no model): blends the photo with a flat colour, a
 * background photo, or a blur of itself, through the (optionally feathered) object mask.
 *
 * outpaint: keep the object, replace the background. inpaint: keep the background, replace the
 * object region. Both are the same blend with the mask inverted.
 */
import { closeSync, existsSync, openSync, readSync, statSync, type Stats } from "node:fs";
import sharp from "sharp";
import { ConfigError } from "../runtime/errors.js";
import { assertSameSize, decodeImage, describeHeaderError, headerProblem, resizeRgb, sharpRaw } from "../imaging/image.js";
import { readInput } from "../storage/input.js";
import { featherMask } from "../imaging/mask-ops.js";
import type { Mask, RgbImage } from "../imaging/types.js";
import type { GeneratorBackend, GeneratorSettings } from "./backend.js";
import { editInputBytes, keptPixels, type EditInput, type GenerateRequest, type Generator, type PreparedEdit } from "./generator.js";

export type Rgb = [number, number, number];

export type CompositeBackground =
  | { kind: "color"; rgb: Rgb }
  /** Any size: scaled to cover the photo and centre-cropped. */
  | { kind: "image"; image: RgbImage }
  /** A Gaussian blur (standard deviation in pixels) of the photo itself. */
  | { kind: "blur"; sigma: number };

export interface CompositeOptions {
  background: CompositeBackground;
  /** Gaussian sigma, in pixels, softening the mask edge; 0 = hard edge. */
  featherPx: number;
  mode: "outpaint" | "inpaint";
}

/** `kept`: the colours blended in where the photo is kept (default the photo; the estimated foreground for outpaint). */
export async function compositeBackground(image: RgbImage, mask: Mask, opts: CompositeOptions, kept: RgbImage = image): Promise<RgbImage> {
  assertSameSize(image, mask, "compositeBackground");
  assertSameSize(image, kept, "compositeBackground");
  const alpha = await featherMask(mask, opts.featherPx);
  const background = await backgroundPixels(image, opts.background);
  // keep = weight (0-255) of the original photo at each pixel.
  const keep = alpha.data;
  const invert = opts.mode === "inpaint";
  const fg = kept.data;
  const bg = background.data;
  const out = new Uint8Array(fg.length);
  for (let i = 0, j = 0; i < keep.length; i++, j += 3) {
    const a = invert ? 255 - keep[i]! : keep[i]!;
    const b = 255 - a;
    out[j] = div255(fg[j]! * a + bg[j]! * b);
    out[j + 1] = div255(fg[j + 1]! * a + bg[j + 1]! * b);
    out[j + 2] = div255(fg[j + 2]! * a + bg[j + 2]! * b);
  }
  return { data: out, width: image.width, height: image.height };
}

/** round(x / 255) for integers 0 <= x <= 255 * 255, without a division. */
function div255(x: number): number {
  const t = x + 128;
  return (t + (t >> 8)) >> 8;
}

/** The background as a full-size RGB image. */
async function backgroundPixels(image: RgbImage, background: CompositeBackground): Promise<RgbImage> {
  const { width, height } = image;
  switch (background.kind) {
    case "color": {
      const [r, g, b] = background.rgb;
      for (const v of background.rgb) {
        if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`background colour component ${v} is not an integer 0-255`);
      }
      const data = new Uint8Array(width * height * 3);
      for (let j = 0; j < data.length; j += 3) {
        data[j] = r;
        data[j + 1] = g;
        data[j + 2] = b;
      }
      return { data, width, height };
    }
    case "image":
      return resizeRgb(background.image, width, height, "cover");
    case "blur": {
      if (!(background.sigma >= 0.3 && background.sigma <= 1000)) {
        throw new RangeError(`blur sigma must be between 0.3 and 1000 pixels, got ${background.sigma}`);
      }
      const data = await sharpRaw({ ...image, channels: 3 })
        .blur(background.sigma)
        .raw()
        .toBuffer();
      return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
    }
  }
}

/** CSS basic colour keywords plus a few common extras. */
const NAMED_COLORS: Record<string, Rgb> = {
  black: [0, 0, 0],
  white: [255, 255, 255],
  gray: [128, 128, 128],
  grey: [128, 128, 128],
  lightgray: [211, 211, 211],
  lightgrey: [211, 211, 211],
  silver: [192, 192, 192],
  red: [255, 0, 0],
  maroon: [128, 0, 0],
  green: [0, 128, 0],
  lime: [0, 255, 0],
  olive: [128, 128, 0],
  blue: [0, 0, 255],
  navy: [0, 0, 128],
  teal: [0, 128, 128],
  aqua: [0, 255, 255],
  cyan: [0, 255, 255],
  fuchsia: [255, 0, 255],
  magenta: [255, 0, 255],
  purple: [128, 0, 128],
  yellow: [255, 255, 0],
  orange: [255, 165, 0],
  pink: [255, 192, 203],
  beige: [245, 245, 220],
};

/**
 * "#rgb", "#rrggbb" (case-insensitive) or a colour name from NAMED_COLORS -> [r, g, b].
 * Throws a ConfigError naming `key` (the option the text came from) on anything else.
 */
export function parseColor(text: string, key = "background"): Rgb {
  const t = text.trim().toLowerCase();
  const named = NAMED_COLORS[t];
  if (named) return [named[0], named[1], named[2]];
  let m = /^#([0-9a-f])([0-9a-f])([0-9a-f])$/.exec(t);
  if (m) return [parseInt(m[1]! + m[1]!, 16), parseInt(m[2]! + m[2]!, 16), parseInt(m[3]! + m[3]!, 16)];
  m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/.exec(t);
  if (m) return [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)];
  throw new ConfigError(key, `${JSON.stringify(text)} is not a colour: use "#rgb", "#rrggbb" or a name (${Object.keys(NAMED_COLORS).join(", ")})`);
}

/** What a `background` option names: "blur", a colour ("#rgb", "#rrggbb", a name), or an image path. */
export type BackgroundSpec = { kind: "blur" } | { kind: "color"; rgb: Rgb } | { kind: "image"; path: string };

/** Parses a `background` option; a malformed colour is a ConfigError, a missing image too. */
export function parseBackground(text: string): BackgroundSpec {
  if (text === "blur") return { kind: "blur" };
  if (/^(#|[a-z]+$)/i.test(text)) return { kind: "color", rgb: parseColor(text) };
  if (!existsSync(text)) throw new ConfigError("background", `${text} is neither a colour, "blur", nor an existing image file`);
  return { kind: "image", path: text };
}

/**
 * Refuses an image background that a worker could not use, before any work: it must be a readable
 * regular file whose header sharp reads as a photo format within `maxPixels` (and the minimum side).
 * One ConfigError line on `background` naming the path; never the file's contents.
 */
export async function checkBackgroundImage(path: string, maxPixels: number): Promise<void> {
  const refuse = (why: string): never => {
    throw new ConfigError("background", `${path}: ${why}`);
  };
  let stats: Stats | undefined;
  try {
    stats = statSync(path);
  } catch (err) {
    refuse(unreadable(err));
  }
  if (!stats) return refuse("cannot be read");
  if (stats.isDirectory()) refuse("is a folder, not an image file");
  if (!stats.isFile()) refuse("not a regular file (a device, pipe or socket), not an image file");
  if (stats.size === 0) refuse("empty file (0 bytes)");
  let head: Buffer = Buffer.alloc(0);
  try {
    head = readHead(path, 4096);
  } catch (err) {
    refuse(unreadable(err));
  }
  const meta = await imageHeader(path);
  if ("error" in meta) return refuse(describeHeaderError(new Error(meta.error), head, stats.size));
  const problem = headerProblem(meta, { maxPixels });
  if (problem) refuse(problem);
}

/** Why a file could not be opened or read, in a few words (the code only: no file contents, no stack). */
function unreadable(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM") return "cannot be read (permission denied)";
  if (code === "ENOENT") return "does not exist";
  return `cannot be read (${code ?? (err instanceof Error ? err.message.split("\n")[0] : String(err))})`;
}

function readHead(path: string, length: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(length);
    return head.subarray(0, readSync(fd, head, 0, length, 0));
  } finally {
    closeSync(fd);
  }
}

/** sharp's header of an image file; `error`: sharp's first line. */
async function imageHeader(path: string): Promise<{ format: string; width: number; height: number } | { error: string }> {
  try {
    const m = await sharp(path, { limitInputPixels: false, failOn: "error" }).metadata();
    return { format: String(m.format), width: m.width, height: m.height };
  } catch (err) {
    return { error: (err instanceof Error ? err.message : String(err)).split("\n")[0]! };
  }
}

/** The composite backend behind the Generator interface: prompts and seeds do not change its output. */
export class CompositeGenerator implements Generator {
  readonly name = "composite";
  constructor(private readonly background: CompositeBackground) {}

  /** Reads a background image once, for every job of the process. */
  static async open(spec: BackgroundSpec, blurSigma: number, maxPixels: number): Promise<CompositeGenerator> {
    if (spec.kind === "blur") return new CompositeGenerator({ kind: "blur", sigma: blurSigma });
    if (spec.kind === "color") return new CompositeGenerator(spec);
    return new CompositeGenerator({ kind: "image", image: await decodeImage(await readInput(spec.path), spec.path, { maxPixels }) });
  }

  async prepare(input: EditInput): Promise<PreparedEdit> {
    return { input, bytes: editInputBytes(input) };
  }

  /** The request's mask is already feathered (or a salient model's soft alpha, left unfeathered): blend with it as it is. */
  generate(request: GenerateRequest): Promise<RgbImage> {
    return compositeBackground(request.image, request.mask, { background: this.background, featherPx: 0, mode: request.mode }, keptPixels(request, request.mode));
  }

  async close(): Promise<void> {}
}

const compositeSettings = (s: GeneratorSettings) => ({ background: s.background as string, blurSigma: s.blurSigma as number, maxPixels: s.maxPixels as number });

/** The local backend: prompts and seeds do not change its output, so any seed will do. */
export const compositeBackend: GeneratorBackend = {
  name: "composite",
  summary: "local compositing over a colour, an image or a blur of the photo (no cloud)",
  needsAws: false,
  seeds: { min: 0, max: 4_294_967_294, default: { from: 0, to: 0 } },
  options: {},
  resolve: () => ({ modelId: "" }),
  check: async (s) => {
    const { background, maxPixels } = compositeSettings(s);
    const spec = parseBackground(background);
    if (spec.kind === "image") await checkBackgroundImage(spec.path, maxPixels);
  },
  bedrockModels: () => [],
  instanceKey: (s) => {
    const { background, blurSigma, maxPixels } = compositeSettings(s);
    return ["composite", background, blurSigma, maxPixels];
  },
  open: (s) => {
    const { background, blurSigma, maxPixels } = compositeSettings(s);
    return CompositeGenerator.open(parseBackground(background), blurSigma, maxPixels);
  },
};
