/**
 * Job payloads (validated when enqueued and when picked up) and deterministic ids. Jobs carry
 * references (paths, store keys), never image bytes. An image's id is a hash of its content and
 * of every option that changes its outputs, so enqueueing it again is a no-op.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import type { Config } from "./config.js";
import { fillPrompt, type PromptVars } from "./prompts.js";
import { GENERATOR_NAMES, generatorBackend, generatorOptionShapes } from "../generators/registry.js";

export const boxSchema = z.object({
  x0: z.number(),
  y0: z.number(),
  x1: z.number(),
  y1: z.number(),
  score: z.number().optional(),
  label: z.string().optional(),
  points: z.array(z.object({ x: z.number(), y: z.number(), label: z.union([z.literal(0), z.literal(1)]) })).optional(),
});

/** The options that change an image's outputs, copied from the config into every job. */
export const imageOptionsSchema = z.object({
  target: z.string().min(1),
  detector: z.enum(["local", "rekognition"]),
  detectorModel: z.string(),
  textDetectorModel: z.string().optional(),
  textMinConfidence: z.number().optional(),
  minConfidence: z.number(),
  maxObjects: z.number().int(),
  samModel: z.string(),
  salientModel: z.string().optional(),
  salientRefine: z.boolean().optional(),
  refineMask: z.boolean().optional(),
  growPx: z.number().int(),
  featherPx: z.number(),
  fillHoles: z.boolean(),
  minIslandArea: z.number().int(),
  generator: z.enum(GENERATOR_NAMES),
  mode: z.enum(["outpaint", "inpaint"]),
  prompts: z.array(z.string().min(1)).min(1),
  negativePrompt: z.string().optional(),
  seeds: z.object({ from: z.number().int(), to: z.number().int() }),
  background: z.string(),
  blurSigma: z.number(),
  modelId: z.string(),
  cfgScale: z.number(),
  quality: z.enum(["standard", "premium"]),
  outpaintingMode: z.enum(["DEFAULT", "PRECISE"]),
  maskPrompt: z.string().optional(),
  width: z.number().int().optional(),
  height: z.number().int().optional(),
  resize: z.boolean(),
  maxPixels: z.number().int(),
  /** The active generator's own keys (only its, so other backends' keys never change an image's id). */
  ...Object.fromEntries(Object.entries(generatorOptionShapes).map(([k, v]) => [k, (v as z.ZodType).optional()])),
});
export type ImageOptions = z.infer<typeof imageOptionsSchema>;

export const imageJobSchema = z.object({
  runId: z.string().min(1),
  imageId: z.string().regex(/^[0-9a-f]{16,64}$/),
  /** Absolute path (or URI) of the input image. */
  input: z.string().min(1),
  /** The name shown to people: the path relative to what was enqueued. */
  name: z.string().min(1),
  /** Output root and this image's key prefix under it. */
  out: z.string().min(1),
  outPrefix: z.string().min(1),
  options: imageOptionsSchema,
  /** Boxes given by the user (target "boxes"). */
  boxes: z.array(boxSchema).optional(),
});
export type ImageJob = z.infer<typeof imageJobSchema>;

export const generateJobSchema = z.object({
  image: imageJobSchema,
  promptIndex: z.number().int().min(0),
  prompt: z.string().min(1),
  seed: z.number().int().min(0),
  /** Store key of the result, deterministic in (image, prompt, seed, generator options). */
  resultKey: z.string().min(1),
});
export type GenerateJob = z.infer<typeof generateJobSchema>;

export function pickImageOptions(config: Config): ImageOptions {
  const own = new Set(Object.keys(generatorBackend(config.generator).options));
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(imageOptionsSchema.shape)) {
    if (!(key in generatorOptionShapes) || own.has(key)) picked[key] = (config as Record<string, unknown>)[key];
  }
  return imageOptionsSchema.parse(picked);
}

/** Whether an image's mask comes from the salient model (target auto with salientModel set): a soft alpha. */
export function usesSalient(opts: { target: string; salientModel?: string | undefined }): boolean {
  return opts.target === "auto" && opts.salientModel !== undefined && opts.salientModel !== "";
}

/** A stable JSON encoding (sorted keys) so equal options always hash the same. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function sha256Hex(...parts: (Buffer | string)[]): string {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return hash.digest("hex");
}

/** Image id: content hash + output root + options + given boxes. */
export function imageIdOf(content: Buffer, out: string, options: ImageOptions, boxes?: unknown): string {
  return sha256Hex(sha256Hex(content), "\0", out, "\0", stableJson({ options, boxes })).slice(0, 24);
}

/** Output key prefix: a readable stem plus the id, so names never collide and never change. */
export function outPrefixOf(name: string, imageId: string): string {
  const stem = name.replace(/\.[^./\\]+$/, "").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "").slice(-60);
  return `${stem || "image"}-${imageId.slice(0, 10)}`;
}

/**
 * Every (prompt, seed) of an image, in a fixed order; prompt templates filled with `vars` when
 * given. Result keys depend on the templates, not the filled text, so they are known at enqueue.
 */
export function generateJobsOf(image: ImageJob, vars?: PromptVars): GenerateJob[] {
  const { prompts, seeds } = image.options;
  const jobs: GenerateJob[] = [];
  prompts.forEach((template, promptIndex) => {
    const prompt = vars ? fillPrompt(template, vars) : template;
    for (let seed = seeds.from; seed <= seeds.to; seed++) {
      const tag = sha256Hex(stableJson({ prompt: template, seed, o: image.options })).slice(0, 8);
      jobs.push({ image, promptIndex, prompt, seed, resultKey: `${image.outPrefix}/results/p${promptIndex}-s${seed}-${tag}.png` });
    }
  });
  return jobs;
}

/** BullMQ job id of one (prompt, seed) of an image (BullMQ ids may not contain ':'). */
export function generateJobId(g: GenerateJob): string {
  return `${g.image.imageId}-p${g.promptIndex}-s${g.seed}`;
}

/** The store keys one image's stages write. */
export function outputKeys(outPrefix: string) {
  return {
    detections: `${outPrefix}/detections.json`,
    mask: `${outPrefix}/mask.png`,
    bedrockMask: `${outPrefix}/mask-bedrock.png`,
    cutout: `${outPrefix}/cutout.png`,
    maskInfo: `${outPrefix}/mask.json`,
    manifest: `${outPrefix}/manifest.json`,
    contactSheet: `${outPrefix}/contact-sheet.jpg`,
  };
}
