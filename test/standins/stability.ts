/**
 * Stability AI Image Services for the Bedrock stand-in (test/standins/bedrock.ts routes them
 * here): validates InvokeModel bodies against DESIGN.md "Stability AI Image Services on Bedrock"
 * and builds the service's `{seeds, finish_reasons, images}` answer.
 *
 * Inpaint, search-replace, erase and outpaint answer a flat colour chosen by the seed (never a
 * colour present in the input, so tests can see what the caller pasted back), of the input's size
 * (outpaint: extended by left/right/up/down). Remove-background answers the input with an alpha
 * channel: a centred ellipse (semi-axes 30% x 35%) with a ~4 px soft edge.
 */
import { createHash, randomInt } from "node:crypto";
import sharp, { type Sharp } from "sharp";
import { BEDROCK_IMAGE_MODELS, stabilityServiceOf, stripProfilePrefix, type StabilityService } from "../../src/generators/bedrock-models.js";
import { seedColour, type RequestFacts } from "./request-facts.js";

/** Every Stability id served: the `us.` inference profiles and their bare `stability.` ids. */
export const STABILITY_MODELS: readonly string[] = BEDROCK_IMAGE_MODELS.filter((m) => m.family === "stability").flatMap((m) => [m.id, stripProfilePrefix(m.id)]);

/** What the stand-in reads from a Stability body (the Stability fields of RequestFacts). */
export type StabilityFacts = Omit<RequestFacts, "taskType" | "maskPrompt">;

/** The service's JSON answer. */
export interface StabilityAnswer {
  seeds: number[];
  finish_reasons: (string | null)[];
  images: string[];
}

export const STYLE_PRESETS = [
  "3d-model",
  "analog-film",
  "anime",
  "cinematic",
  "comic-book",
  "digital-art",
  "enhance",
  "fantasy-art",
  "isometric",
  "line-art",
  "low-poly",
  "modeling-compound",
  "neon-punk",
  "origami",
  "photographic",
  "pixel-art",
  "tile-texture",
] as const;

export const MAX_SEED = 4_294_967_294;
export const MAX_PIXELS = 9_437_184;
const MAX_TEXT = 10_000;
const OUTPUT_FORMATS = ["png", "jpeg", "webp"] as const;
type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Keys each service accepts (anything else is a violation). */
const KEYS: Record<StabilityService, readonly string[]> = {
  inpaint: ["image", "seed", "output_format", "prompt", "negative_prompt", "style_preset", "mask", "grow_mask"],
  "search-replace": ["image", "seed", "output_format", "prompt", "search_prompt", "negative_prompt", "style_preset", "grow_mask"],
  erase: ["image", "seed", "output_format", "mask", "grow_mask"],
  outpaint: ["image", "seed", "output_format", "prompt", "negative_prompt", "style_preset", "left", "right", "up", "down", "creativity"],
  "remove-background": ["image", "output_format"],
};

/** The service an id served by the stand-in names, or undefined. */
export function stabilityServiceFor(modelId: string): StabilityService | undefined {
  return STABILITY_MODELS.includes(modelId) ? stabilityServiceOf(modelId) : undefined;
}

/**
 * Checks `body` against the contract of the Stability service `modelId` names: the problem (one
 * line), or null when valid; `facts` holds what was read, as far as it got.
 */
export async function validateStabilityRequest(modelId: string, body: unknown): Promise<{ problem: string | null; facts: StabilityFacts }> {
  const facts: StabilityFacts = {};
  const service = stabilityServiceFor(modelId);
  if (!service) return { problem: `unknown model ${modelId}`, facts };
  facts.service = service;
  return { problem: await check(service, body, facts), facts };
}

async function check(service: StabilityService, body: unknown, facts: StabilityFacts): Promise<string | null> {
  if (!isObject(body)) return "the body must be a JSON object";
  const extra = Object.keys(body).filter((k) => !KEYS[service].includes(k));
  if (extra.length) return `unexpected key(s) for ${service}: ${extra.join(", ")} (accepted: ${KEYS[service].join(", ")})`;

  const text = (key: string, min: number): string | null => {
    const v = body[key];
    if (v === undefined) return min > 0 ? `${key} is required for ${service}` : null;
    if (typeof v !== "string") return `${key} must be a string`;
    const n = [...v].length;
    return n < min || n > MAX_TEXT ? `${key} must be ${min}-${MAX_TEXT} characters, got ${n}` : null;
  };
  const promptMin = service === "inpaint" || service === "search-replace" ? 1 : 0;
  const textProblem =
    (KEYS[service].includes("prompt") ? text("prompt", promptMin) : null) ?? (service === "search-replace" ? text("search_prompt", 1) : null) ?? text("negative_prompt", 0);
  if (typeof body.prompt === "string") facts.prompt = body.prompt;
  if (typeof body.search_prompt === "string") facts.searchPrompt = body.search_prompt;
  if (textProblem) return textProblem;

  const { seed, output_format: format, style_preset: style, grow_mask: grow, creativity } = body;
  if (seed !== undefined && !(isInt(seed) && seed >= 0 && seed <= MAX_SEED)) return `seed must be an integer 0-${MAX_SEED}, got ${JSON.stringify(seed)}`;
  if (isInt(seed)) facts.seed = seed;
  const formats: readonly string[] = service === "remove-background" ? ["png", "webp"] : OUTPUT_FORMATS;
  if (format !== undefined && !(typeof format === "string" && formats.includes(format))) {
    return `output_format must be one of ${formats.join(", ")}, got ${JSON.stringify(format)}`;
  }
  if (typeof format === "string") facts.outputFormat = format;
  if (style !== undefined && !(STYLE_PRESETS as readonly unknown[]).includes(style)) {
    return `style_preset must be one of ${STYLE_PRESETS.join(", ")}, got ${JSON.stringify(style)}`;
  }
  if (grow !== undefined && !(isInt(grow) && grow >= 0 && grow <= 20)) return `grow_mask must be an integer 0-20, got ${JSON.stringify(grow)}`;
  if (isInt(grow)) facts.growMask = grow;
  if (creativity !== undefined && !(typeof creativity === "number" && creativity >= 0.1 && creativity <= 1)) {
    return `creativity must be a number 0.1-1.0, got ${JSON.stringify(creativity)}`;
  }
  if (service === "outpaint") {
    const extend = { left: 0, right: 0, up: 0, down: 0 };
    for (const side of ["left", "right", "up", "down"] as const) {
      const v = body[side];
      if (v === undefined) continue;
      if (!(isInt(v) && v >= 0 && v <= 2000)) return `${side} must be an integer 0-2000, got ${JSON.stringify(v)}`;
      extend[side] = v;
    }
    facts.extend = extend;
    if (!Object.values(extend).some((v) => v > 0)) return "outpaint needs at least one of left, right, up, down above 0";
  }

  const image = await readImage(body.image, "image");
  if (typeof image === "string") return image;
  facts.width = image.width;
  facts.height = image.height;
  facts.imageHash = createHash("sha256").update(image.bytes).digest("hex").slice(0, 16);
  const { width: w, height: h } = image;
  if (w < 64 || h < 64) return `image ${w}x${h}: each side must be at least 64 px`;
  if (w * h > MAX_PIXELS) return `image ${w}x${h}: ${w * h} pixels, over the ${MAX_PIXELS} pixel limit`;
  if (2 * w > 5 * h || 2 * h > 5 * w) return `image ${w}x${h}: aspect ratio must be between 1:2.5 and 2.5:1`;

  if (body.mask !== undefined) {
    const mask = await readImage(body.mask, "mask");
    if (typeof mask === "string") return mask;
    facts.maskWidth = mask.width;
    facts.maskHeight = mask.height;
    facts.maskSameSize = mask.width === w && mask.height === h;
    if (mask.hasAlpha) return "mask must be a grey or RGB image without an alpha channel";
    const { data } = await sharp(mask.bytes).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    const seen = new Set<number>();
    let white = 0;
    for (const v of data) {
      seen.add(v);
      if (v >= 128) white++;
    }
    facts.maskValues = seen.size;
    facts.maskWhiteFraction = white / data.length;
  }
  return null;
}

/** A decoded base64 PNG/JPEG/WebP header, or the problem. */
async function readImage(value: unknown, what: string): Promise<{ bytes: Buffer; width: number; height: number; hasAlpha: boolean } | string> {
  if (typeof value !== "string" || value === "") return `${what} is required and must be a base64 string`;
  if (value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) return `${what} is not valid base64`;
  const bytes = Buffer.from(value, "base64");
  try {
    const meta = await sharp(bytes, { failOn: "error" }).metadata();
    if (meta.format !== "png" && meta.format !== "jpeg" && meta.format !== "webp") return `${what} must be PNG, JPEG or WebP, got ${meta.format}`;
    return { bytes, width: meta.width, height: meta.height, hasAlpha: meta.hasAlpha };
  } catch (err) {
    return `${what} does not decode as an image (${(err as Error).message.split("\n")[0]})`;
  }
}

/**
 * The answer to a request `validateStabilityRequest` accepted (`facts` from it; `answeredSeed` is
 * set here). With `finish`, the request is refused with that finish reason and no image, or a
 * blank (black) one when `finish.image`.
 */
export async function buildStabilityAnswer(body: Record<string, unknown>, facts: StabilityFacts, finish?: { reason: string; image: boolean }): Promise<StabilityAnswer> {
  const seed = facts.service === "remove-background" ? 0 : facts.seed || randomInt(1, MAX_SEED + 1);
  facts.answeredSeed = seed;
  const format = (facts.outputFormat ?? "png") as OutputFormat;
  const input = sharp(Buffer.from(body.image as string, "base64"))
    .removeAlpha()
    .toColourspace("srgb")
    .raw();
  const { data, info } = await input.toBuffer({ resolveWithObject: true });
  const { width, height } = info;
  const e = facts.extend ?? { left: 0, right: 0, up: 0, down: 0 };
  const outW = width + e.left + e.right;
  const outH = height + e.up + e.down;

  if (finish) {
    const images = finish.image ? [await encode(sharp({ create: { width: outW, height: outH, channels: 3, background: "#000" } }), format)] : [];
    return { seeds: [seed], finish_reasons: [finish.reason], images };
  }
  if (facts.service === "remove-background") {
    const rgba = Buffer.alloc(width * height * 4);
    const alpha = ellipseAlpha(width, height);
    for (let i = 0; i < width * height; i++) {
      rgba[i * 4] = data[i * 3]!;
      rgba[i * 4 + 1] = data[i * 3 + 1]!;
      rgba[i * 4 + 2] = data[i * 3 + 2]!;
      rgba[i * 4 + 3] = alpha[i]!;
    }
    return { seeds: [0], finish_reasons: [null], images: [await encode(sharp(rgba, { raw: { width, height, channels: 4 } }), format)] };
  }
  const [r, g, b] = colourAbsentFrom(data, seed);
  const out = sharp({ create: { width: outW, height: outH, channels: 3, background: { r, g, b } } });
  return { seeds: [seed], finish_reasons: [null], images: [await encode(out, format)] };
}

/** Alpha of remove-background's cut-out: 255 inside the centred ellipse, 0 outside, a linear ramp over ~4 px at its edge. */
export function ellipseAlpha(width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const a = width * 0.3;
  const b = height * 0.35;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dx = x + 0.5 - width / 2;
      const dy = y + 0.5 - height / 2;
      const r = Math.hypot(dx / a, dy / b);
      // Distance to the edge along the ray from the centre: d / r - d (inside > 0).
      const inside = r === 0 ? Infinity : Math.hypot(dx, dy) * (1 / r - 1);
      out[y * width + x] = Math.round(255 * Math.min(1, Math.max(0, 0.5 + inside / 4)));
    }
  }
  return out;
}

/** seedColour(seed), or the next seed's colour when the input (RGB) holds it: never a kept pixel. */
function colourAbsentFrom(rgb: Buffer, seed: number): [number, number, number] {
  const present = new Uint8Array(1 << 21);
  for (let i = 0; i < rgb.length; i += 3) {
    const c = (rgb[i]! << 16) | (rgb[i + 1]! << 8) | rgb[i + 2]!;
    present[c >> 3]! |= 1 << (c & 7);
  }
  const has = (c: number): boolean => (present[c >> 3]! & (1 << (c & 7))) !== 0;
  for (let k = 0; k < 256; k++) {
    const [r, g, b] = seedColour(seed + k);
    if (!has((r << 16) | (g << 8) | b)) return [r, g, b];
  }
  for (let c = 0; ; c++) if (!has(c)) return [c >> 16, (c >> 8) & 255, c & 255];
}

async function encode(img: Sharp, format: OutputFormat): Promise<string> {
  const out = format === "jpeg" ? img.jpeg({ quality: 95 }) : format === "webp" ? img.webp({ lossless: true }) : img.png();
  return (await out.toBuffer()).toString("base64");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v);
}
