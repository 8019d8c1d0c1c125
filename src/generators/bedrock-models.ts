/**
 * The Bedrock image models maskfleet calls, written once: model ids, which generator serves
 * them, what each one does, and the lifecycle dates AWS has published (model cards, checked
 * 2026-12; the service's own GetFoundationModel answer wins where it gives one).
 *
 * Stability AI Image Services are called through `us.` cross-region inference profiles and are
 * offered in us-east-1, us-east-2 and us-west-2 only.
 */

import { ConfigError } from "../runtime/errors.js";

export type BedrockFamily = "titan" | "nova" | "stability";

/** What a Stability AI Image Service does with an image (one InvokeModel = one image). */
export type StabilityService = "inpaint" | "search-replace" | "erase" | "outpaint" | "remove-background";

export interface BedrockImageModel {
  /** The id InvokeModel takes (a `us.` inference profile for Stability). */
  id: string;
  family: BedrockFamily;
  title: string;
  /** Stability only: the service this id is. */
  service?: StabilityService;
  /** Published lifecycle dates (ISO), for messages when the service no longer knows the model. */
  legacyDate?: string;
  endOfLife?: string;
}

export const STABILITY_REGIONS = ["us-east-1", "us-east-2", "us-west-2"] as const;

export const BEDROCK_IMAGE_MODELS: readonly BedrockImageModel[] = [
  { id: "us.stability.stable-image-inpaint-v1:0", family: "stability", service: "inpaint", title: "Stable Image Inpaint" },
  { id: "us.stability.stable-image-search-replace-v1:0", family: "stability", service: "search-replace", title: "Stable Image Search and Replace" },
  { id: "us.stability.stable-image-erase-object-v1:0", family: "stability", service: "erase", title: "Stable Image Erase Object" },
  { id: "us.stability.stable-outpaint-v1:0", family: "stability", service: "outpaint", title: "Stable Outpaint" },
  { id: "us.stability.stable-image-remove-background-v1:0", family: "stability", service: "remove-background", title: "Stable Image Remove Background" },
  { id: "amazon.titan-image-generator-v1", family: "titan", title: "Titan Image Generator G1 v1" },
  { id: "amazon.titan-image-generator-v2:0", family: "titan", title: "Titan Image Generator G1 v2", endOfLife: "2026-06-30" },
  { id: "amazon.nova-canvas-v1:0", family: "nova", title: "Nova Canvas", legacyDate: "2026-03-30", endOfLife: "2026-09-30" },
];

/** The known model ids of a family, in the table's order. */
export function modelIdsOf(family: BedrockFamily): string[] {
  return BEDROCK_IMAGE_MODELS.filter((m) => m.family === family).map((m) => m.id);
}

/** Model id prefixes per family (a Stability id may also be given without its `us.` profile prefix). */
export const FAMILY_PREFIXES: Record<BedrockFamily, readonly string[]> = {
  titan: ["amazon.titan-image-generator-"],
  nova: ["amazon.nova-canvas-"],
  stability: ["us.stability.", "stability."],
};

export function familyOf(modelId: string): BedrockFamily | undefined {
  return (Object.keys(FAMILY_PREFIXES) as BedrockFamily[]).find((f) => FAMILY_PREFIXES[f].some((p) => modelId.startsWith(p)));
}

/** The known model for an id (with or without a cross-region profile prefix such as `us.`). */
export function knownModel(modelId: string): BedrockImageModel | undefined {
  const bare = stripProfilePrefix(modelId);
  return BEDROCK_IMAGE_MODELS.find((m) => m.id === modelId || stripProfilePrefix(m.id) === bare);
}

/** The Stability service an id names, from the table or from its name. */
export function stabilityServiceOf(modelId: string): StabilityService | undefined {
  const known = knownModel(modelId)?.service;
  if (known) return known;
  const name = stripProfilePrefix(modelId);
  if (/search-replace/.test(name)) return "search-replace";
  if (/erase/.test(name)) return "erase";
  if (/remove-background/.test(name)) return "remove-background";
  if (/outpaint/.test(name)) return "outpaint";
  if (/inpaint/.test(name)) return "inpaint";
  return undefined;
}

/** The default model id of a Stability service. */
export function stabilityModelFor(service: StabilityService): string {
  return BEDROCK_IMAGE_MODELS.find((m) => m.service === service)!.id;
}

/** `us.stability.x` -> `stability.x`: cross-region inference profiles prefix a geography. */
export function stripProfilePrefix(modelId: string): string {
  return modelId.replace(/^(us|eu|apac|us-gov|global)\./, "");
}

/** Whether an id is a cross-region inference profile (resolved with GetInferenceProfile). */
export function isInferenceProfile(modelId: string): boolean {
  return stripProfilePrefix(modelId) !== modelId;
}

/** Stability AI Image Services are offered in STABILITY_REGIONS only: anything else is one clear error. */
export function assertStabilityRegion(region: string): void {
  if ((STABILITY_REGIONS as readonly string[]).includes(region)) return;
  throw new ConfigError(
    "region",
    `Stability AI Image Services on Bedrock are offered in ${STABILITY_REGIONS.join(", ")} only, not ${region}; use --region ${STABILITY_REGIONS.join(" | ")}`,
  );
}
