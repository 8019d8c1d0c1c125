/**
 * What every Stability AI Image Service on Bedrock shares (Stability's Bedrock documentation;
 * DESIGN.md "Stability AI Image Services"): one InvokeModel with a JSON body = one image.
 *
 * - Common body fields: `image` (base64; fitted to STABILITY_SIZE_RULES by the caller), `seed`
 *   (0-4,294,967,294, where 0 means "pick a random one": maskfleet never sends 0, so every
 *   result can be made again), `output_format` (png: lossless, so kept pixels stay exact),
 *   `negative_prompt`, `style_preset`.
 * - Response `{seeds, finish_reasons, images}`: a finish reason "Filter reason: ..." is a content
 *   rejection of this prompt x seed (RejectedError, never retried); "Inference error", or no image
 *   with no reason, is transient. Service errors map as for every Bedrock model (bedrock-client.ts).
 */
import type { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { ConfigError, RejectedError } from "../runtime/errors.js";
import { invokeModelJson } from "./bedrock-client.js";
import { textLength } from "./bedrock-image.js";

export const STABILITY_MAX_SEED = 4_294_967_294;
export const STABILITY_MAX_TEXT = 10_000;
export const STABILITY_MAX_EXTEND = 2000;

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
export type StylePreset = (typeof STYLE_PRESETS)[number];

/** Why a seed cannot be sent to Stability, or null. */
function stabilitySeedProblem(seed: number): string | null {
  if (!Number.isInteger(seed) || seed < 1 || seed > STABILITY_MAX_SEED) {
    return `Stability AI Image Services take seeds 1-${STABILITY_MAX_SEED} here (their 0 means "a random seed", so that result could never be made again), got ${seed}`;
  }
  return null;
}

/** A prompt within Stability's limit, trimmed; a RejectedError (not sent) when over. */
export function stabilityText(modelId: string, what: string, text: string): string {
  const t = text.trim();
  const n = textLength(t);
  if (n > STABILITY_MAX_TEXT) throw new RejectedError(`${modelId}: the ${what} has ${n} characters, over Stability's limit of ${STABILITY_MAX_TEXT} (not sent)`);
  return t;
}

/** The body fields every service takes (remove-background: only output_format). */
export function commonFields(modelId: string, o: { seed: number; negativePrompt?: string | undefined; stylePreset?: string | undefined }): Record<string, unknown> {
  const problem = stabilitySeedProblem(o.seed);
  if (problem) throw new ConfigError("seeds", problem);
  const negative = o.negativePrompt ? stabilityText(modelId, "negative prompt", o.negativePrompt) : "";
  return {
    seed: o.seed,
    output_format: "png",
    ...(negative && { negative_prompt: negative }),
    ...(o.stylePreset && { style_preset: o.stylePreset }),
  };
}

/** The one image of an answer, base64, and the seed the service used. */
export interface StabilityImage {
  base64: string;
  seed: number | undefined;
}

/** InvokeModel with `body`; the answer's image, or the error its finish reason means. */
export async function invokeStability(client: BedrockRuntimeClient, modelId: string, body: Record<string, unknown>): Promise<StabilityImage> {
  return readStabilityAnswer(await invokeModelJson(client, modelId, body), modelId);
}

/** Reads `{seeds, finish_reasons, images}` (see the module comment). */
function readStabilityAnswer(response: unknown, modelId: string): StabilityImage {
  if (typeof response !== "object" || response === null) throw new Error(`${modelId}: unexpected response (${typeof response})`);
  const { images, finish_reasons: reasons, seeds } = response as { images?: unknown; finish_reasons?: unknown; seeds?: unknown };
  const reason: unknown = Array.isArray(reasons) ? reasons[0] : undefined;
  if (typeof reason === "string" && /^filter reason/i.test(reason)) throw new RejectedError(`${modelId} filtered the result (${reason})`);
  if (typeof reason === "string" && reason !== "") throw new Error(`${modelId}: ${reason}`);
  const first: unknown = Array.isArray(images) ? images[0] : undefined;
  if (typeof first !== "string" || first === "") throw new Error(`${modelId} returned no image (no reason given)`);
  const seed: unknown = Array.isArray(seeds) ? seeds[0] : undefined;
  return { base64: first, seed: typeof seed === "number" ? seed : undefined };
}

/** One result's request, as a Stability edit service gets it. */
export interface StabilityEditRequest {
  mode: "outpaint" | "inpaint";
  prompt: string;
  searchPrompt?: string | undefined;
  /** Stability's grow_mask, 0-20 (maskfleet's own growing is --grow). */
  growMask: number;
}

/** One Stability editing service: what it is sent, and which region of the original it keeps. */
export interface StabilityEdit {
  service: "inpaint" | "search-replace" | "erase";
  /** The mask sent (white = regenerate): the object, the background, or no mask. */
  regenerates(mode: "outpaint" | "inpaint"): "object" | "background" | "none";
  /** The region pasted back from the original afterwards, as pasteBack's mode (outpaint keeps the object). */
  keeps(mode: "outpaint" | "inpaint"): "outpaint" | "inpaint";
  /** The service's own body fields. */
  fields(modelId: string, request: StabilityEditRequest): Record<string, unknown>;
}

/** A required prompt: an empty one is a RejectedError for that prompt x seed (never sent). */
export function requiredText(modelId: string, what: string, text: string | undefined): string {
  const t = stabilityText(modelId, what, text ?? "");
  if (t === "") throw new RejectedError(`${modelId}: the ${what} is empty (not sent)`);
  return t;
}
