/**
 * The options that change an image's outputs: picked from the config, copied into every run's
 * settings, and hashed into image ids (all but the "gate" keys). Which keys they are is each key's
 * `effect` in the config table (src/config/table.ts), so a new key cannot miss the workers unnoticed.
 */
import { z } from "zod";
import type { Config } from "./config.js";
import { imageKeys, tableImageShape } from "./table.js";
import { generatorBackend, generatorOptionShapes } from "../generators/registry.js";

/** The options that change an image's outputs, copied from the config into every job. */
export const imageOptionsSchema = z.object({
  ...tableImageShape,
  /** The generators' own keys the table marks (pickImageOptions takes the active one's only, so other backends' keys never change an image's id). */
  ...Object.fromEntries(Object.entries(generatorOptionShapes).flatMap(([k, v]) => (imageKeys.includes(k) ? [[k, (v as z.ZodType).optional()]] : []))),
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
