/** The options that change an image's outputs: picked from the config, copied into every run's settings, and hashed into image ids. */
import { z } from "zod";
import type { Config } from "./config.js";
import { GENERATOR_NAMES, generatorBackend, generatorOptionShapes } from "../generators/registry.js";

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
  maskSelection: z.enum(["single", "best"]).optional(),
  growPx: z.number().int(),
  featherPx: z.number(),
  fillHoles: z.boolean(),
  maxHoleFraction: z.number(),
  minIslandArea: z.number().int(),
  estimateForeground: z.boolean(),
  minMaskQuality: z.number().optional(),
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

export function pickImageOptions(config: Config): ImageOptions {
  const own = new Set(Object.keys(generatorBackend(config.generator).options));
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(imageOptionsSchema.shape)) {
    if (!(key in generatorOptionShapes) || own.has(key)) picked[key] = (config as Record<string, unknown>)[key];
  }
  return imageOptionsSchema.parse(picked);
}
