/**
 * Amazon Nova Canvas (`amazon.nova-canvas-v1:0`) as a Generator: INPAINTING / OUTPAINTING
 * through InvokeModel.
 *
 * Request body (Amazon Nova user guide, "Image generation and editing"): the same shape as
 * Titan's,
 *   {taskType, inPaintingParams | outPaintingParams: {image, text?, negativeText?,
 *    maskImage | maskPrompt, outPaintingMode (OUTPAINTING only)},
 *    imageGenerationConfig: {numberOfImages: 1, quality, cfgScale, seed}}
 * with no width/height for these tasks (the output has the input's size). cfgScale is sent as
 * given (the service's default, 6.5, applies only when it is left out).
 *
 * Limits checked before any request:
 * - text, negativeText, maskPrompt 1-1,024 characters (empty ones are left out); OUTPAINTING
 *   needs text: otherwise a RejectedError (never sent, never retried).
 * - cfgScale 1.1-10, seed 0-858,993,459, quality standard|premium: a ConfigError naming the key.
 * - Image size: see NOVA_SIZE_RULES in bedrock-image.ts (sides 320-4,096 and divisible by 16,
 *   aspect 1:4-4:1, fewer than 4,194,304 pixels).
 *
 * Response {images: [base64], error?}: Nova may return fewer images than asked; none (with or
 * without an `error` reason) -> RejectedError.
 */
import type { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { ConfigError, RejectedError } from "../../shared/errors.js";
import type { RgbImage } from "../../shared/types.js";
import { firstImage, invokeModelJson, type BedrockGeneratorOptions } from "./bedrock-client.js";
import { NOVA_SIZE_RULES, encodeModelInput, finishEdit, textLength } from "./bedrock-image.js";
import type { GenerateRequest, Generator } from "./generator.js";

export const NOVA_MODEL_IDS = ["amazon.nova-canvas-v1:0"] as const;

export const NOVA_LIMITS = {
  maxText: 1024,
  minCfgScale: 1.1,
  maxCfgScale: 10,
  maxSeed: 858_993_459,
} as const;

export class NovaCanvasGenerator implements Generator {
  readonly name: string;

  constructor(
    private readonly client: BedrockRuntimeClient,
    readonly modelId: string = "amazon.nova-canvas-v1:0",
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

    const encoded = await encodeModelInput(request.image, maskPrompt ? undefined : request.mask, NOVA_SIZE_RULES);
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
  if (n > NOVA_LIMITS.maxText) {
    throw new RejectedError(`${modelId}: the ${what} has ${n} characters, over Nova Canvas's limit of ${NOVA_LIMITS.maxText} (not sent)`);
  }
}

function checkConfig(request: GenerateRequest): void {
  const { cfgScale, seed, quality } = request;
  if (!(cfgScale >= NOVA_LIMITS.minCfgScale && cfgScale <= NOVA_LIMITS.maxCfgScale)) {
    throw new ConfigError("cfgScale", `Nova Canvas takes ${NOVA_LIMITS.minCfgScale}-${NOVA_LIMITS.maxCfgScale}, got ${cfgScale}`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed > NOVA_LIMITS.maxSeed) {
    throw new ConfigError("seeds", `Nova Canvas takes integer seeds 0-${NOVA_LIMITS.maxSeed}, got ${seed}`);
  }
  if (quality !== "standard" && quality !== "premium") throw new ConfigError("quality", `must be standard or premium, got ${String(quality)}`);
}
