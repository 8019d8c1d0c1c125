/**
 * Amazon Titan Image Generator G1 (`amazon.titan-image-generator-v1`, `amazon.titan-image-generator-v2:0`)
 * as a Generator: INPAINTING / OUTPAINTING through InvokeModel.
 *
 * Request body (Amazon Bedrock user guide, "Amazon Titan Image Generator G1 models"):
 *   {taskType: "INPAINTING" | "OUTPAINTING",
 *    inPaintingParams | outPaintingParams: {image, text?, negativeText?, maskImage | maskPrompt,
 *                                           outPaintingMode (OUTPAINTING only)},
 *    imageGenerationConfig: {numberOfImages: 1, quality, cfgScale, seed}}
 * No width/height: the output has the input's size. v1 and v2 take the same body for these two
 * tasks (v2 adds other task types: image conditioning, colour guidance, background removal).
 *
 * Limits checked before any request:
 * - text, negativeText, maskPrompt <= 512 characters; OUTPAINTING needs text. Such a prompt is a
 *   RejectedError (recorded on that prompt x seed, never sent, never retried; the other prompts go on).
 * - cfgScale 1.1-10, seed 0-2,147,483,646, quality standard|premium: a ConfigError naming the key
 *   (the run's settings are wrong, not one prompt).
 * - Image size: see TITAN_SIZE_RULES in bedrock-image.ts (longer side <= 1,408, PNG <= 5 MB).
 *
 * Response {images: [base64], error?}: `error` set (moderation) or no image -> RejectedError.
 */
import type { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { ConfigError, RejectedError } from "../../shared/errors.js";
import type { RgbImage } from "../../shared/types.js";
import { firstImage, invokeModelJson, type BedrockGeneratorOptions } from "./bedrock-client.js";
import { TITAN_SIZE_RULES, encodeModelInput, finishEdit, textLength } from "./bedrock-image.js";
import type { GenerateRequest, Generator } from "./generator.js";

export const TITAN_MODEL_IDS = ["amazon.titan-image-generator-v1", "amazon.titan-image-generator-v2:0"] as const;

export const TITAN_LIMITS = {
  maxText: 512,
  minCfgScale: 1.1,
  maxCfgScale: 10,
  maxSeed: 2_147_483_646,
} as const;

export class TitanGenerator implements Generator {
  readonly name: string;

  constructor(
    private readonly client: BedrockRuntimeClient,
    readonly modelId: string = "amazon.titan-image-generator-v2:0",
    private readonly opts: BedrockGeneratorOptions = {},
  ) {
    this.name = modelId;
  }

  async generate(request: GenerateRequest): Promise<RgbImage> {
    const body = await this.requestBody(request);
    const response = await invokeModelJson(this.client, this.modelId, body.json);
    const image = firstImage(response, this.modelId);
    return finishEdit(request.image, body.sentMask ? request.mask : undefined, request.mode, body.plan, image, this.modelId);
  }

  /** The InvokeModel body for `request` (checks every limit first). Exposed for tests. */
  async requestBody(request: GenerateRequest) {
    const { mode } = request;
    const text = request.prompt.trim();
    const negativeText = request.negativePrompt?.trim() ?? "";
    const maskPrompt = request.maskPrompt?.trim() ?? "";
    if (mode === "outpaint" && text === "") throw new RejectedError(`${this.modelId}: outpainting needs a prompt (text), got an empty one`);
    checkText(this.modelId, "prompt", text);
    checkText(this.modelId, "negative prompt", negativeText);
    checkText(this.modelId, "mask prompt", maskPrompt);
    checkConfig(request);

    const encoded = await encodeModelInput(request.image, maskPrompt ? undefined : request.mask, TITAN_SIZE_RULES);
    const params: Record<string, string> = { image: encoded.imageBase64 };
    if (text) params.text = text;
    if (negativeText) params.negativeText = negativeText;
    if (maskPrompt) params.maskPrompt = maskPrompt;
    else params.maskImage = encoded.maskBase64!;
    if (mode === "outpaint") params.outPaintingMode = request.outpaintingMode;
    const json = {
      taskType: mode === "outpaint" ? "OUTPAINTING" : "INPAINTING",
      [mode === "outpaint" ? "outPaintingParams" : "inPaintingParams"]: params,
      imageGenerationConfig: { numberOfImages: 1, quality: request.quality, cfgScale: request.cfgScale, seed: request.seed },
    };
    return { json, plan: encoded.plan, sentMask: !maskPrompt };
  }

  async close(): Promise<void> {
    if (this.opts.ownsClient ?? true) this.client.destroy();
  }
}

function checkText(modelId: string, what: string, text: string): void {
  const n = textLength(text);
  if (n > TITAN_LIMITS.maxText) {
    throw new RejectedError(`${modelId}: the ${what} has ${n} characters, over Titan's limit of ${TITAN_LIMITS.maxText} (not sent)`);
  }
}

function checkConfig(request: GenerateRequest): void {
  const { cfgScale, seed, quality } = request;
  if (!(cfgScale >= TITAN_LIMITS.minCfgScale && cfgScale <= TITAN_LIMITS.maxCfgScale)) {
    throw new ConfigError("cfgScale", `Titan takes ${TITAN_LIMITS.minCfgScale}-${TITAN_LIMITS.maxCfgScale}, got ${cfgScale}`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed > TITAN_LIMITS.maxSeed) {
    throw new ConfigError("seeds", `Titan takes integer seeds 0-${TITAN_LIMITS.maxSeed}, got ${seed}`);
  }
  if (quality !== "standard" && quality !== "premium") throw new ConfigError("quality", `must be standard or premium, got ${String(quality)}`);
}
