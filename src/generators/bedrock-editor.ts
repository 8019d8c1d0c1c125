/**
 * Image editing (INPAINTING / OUTPAINTING) on a Bedrock image model through InvokeModel, as a
 * Generator. Titan and Nova Canvas take the same body; what differs (text, cfgScale and seed
 * limits, size rules) is the model's spec, one file each: titan.ts, nova.ts.
 *
 *   {taskType: "INPAINTING" | "OUTPAINTING",
 *    inPaintingParams | outPaintingParams: {image, text?, negativeText?, maskImage | maskPrompt,
 *                                           outPaintingMode (OUTPAINTING only)},
 *    imageGenerationConfig: {numberOfImages: 1, quality, cfgScale, seed}}
 *
 * Checked before any request: a prompt over the model's limit, or an empty one for OUTPAINTING,
 * is a RejectedError (that prompt x seed is recorded, never sent, never retried); cfgScale, seed
 * or quality out of range is a ConfigError naming the key (the run's settings are wrong).
 * Response {images: [base64], error?}: `error` set (moderation) or no image -> RejectedError.
 */
import type { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { ConfigError, RejectedError } from "../runtime/errors.js";
import type { RgbImage } from "../imaging/types.js";
import { checkSeedRange, type GeneratorBackend } from "./backend.js";
import { createBedrockClient, firstImage, invokeModelJson, type BedrockGeneratorOptions } from "./bedrock-client.js";
import { familyOf, type BedrockFamily } from "./bedrock-models.js";
import { encodeModelInput, finishEdit, textLength, type EncodedModelInput, type SizeRules } from "./bedrock-image.js";
import { editInputBytes, keptPixels, type EditInput, type GenerateRequest, type Generator, type PreparedEdit } from "./generator.js";

/** The image (and mask, unless a maskPrompt replaces it) fitted and encoded once. */
interface PreparedBedrockEdit extends PreparedEdit {
  encoded: EncodedModelInput;
}

/** What one Bedrock image model accepts. */
export interface BedrockEditModel {
  /** Name in messages ("Titan", "Nova Canvas"). */
  title: string;
  modelIds: readonly string[];
  limits: { maxText: number; minCfgScale: number; maxCfgScale: number; maxSeed: number };
  sizeRules: SizeRules;
}

export class BedrockImageEditor implements Generator {
  readonly name: string;

  constructor(
    private readonly model: BedrockEditModel,
    private readonly client: BedrockRuntimeClient,
    readonly modelId: string = model.modelIds[model.modelIds.length - 1] as string,
    private readonly opts: BedrockGeneratorOptions = {},
  ) {
    this.name = modelId;
  }

  async prepare(input: EditInput): Promise<PreparedBedrockEdit> {
    const useMask = !input.maskPrompt?.trim();
    const encoded = await encodeModelInput(input.image, useMask ? input.mask : undefined, this.model.sizeRules);
    return { input, encoded, bytes: editInputBytes(input) + encoded.imageBase64.length + (encoded.maskBase64?.length ?? 0) };
  }

  async generate(request: GenerateRequest, prepared?: PreparedEdit): Promise<RgbImage> {
    const body = await this.requestBody(request, prepared as PreparedBedrockEdit | undefined);
    const response = await invokeModelJson(this.client, this.modelId, body.json);
    const image = firstImage(response, this.modelId);
    return finishEdit(keptPixels(request, request.mode), body.sentMask ? request.mask : undefined, request.mode, body.plan, image, this.modelId);
  }

  /** The InvokeModel body for `request` (checks every limit first). Exposed for tests. */
  async requestBody(request: GenerateRequest, prepared?: PreparedBedrockEdit) {
    const { mode } = request;
    const text = request.prompt.trim();
    const negativeText = request.negativePrompt?.trim() ?? "";
    const maskPrompt = request.maskPrompt?.trim() ?? "";
    if (mode === "outpaint" && text === "") throw new RejectedError(`${this.modelId}: outpainting needs a prompt (text), got an empty one`);
    this.checkText("prompt", text);
    this.checkText("negative prompt", negativeText);
    this.checkText("mask prompt", maskPrompt);
    this.checkConfig(request);

    const { encoded } = prepared ?? (await this.prepare(request));
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

  private checkText(what: string, text: string): void {
    const n = textLength(text);
    const { title, limits } = this.model;
    if (n > limits.maxText) throw new RejectedError(`${this.modelId}: the ${what} has ${n} characters, over ${title}'s limit of ${limits.maxText} (not sent)`);
  }

  private checkConfig(request: GenerateRequest): void {
    const { cfgScale, seed, quality } = request;
    const { title, limits } = this.model;
    if (!(cfgScale >= limits.minCfgScale && cfgScale <= limits.maxCfgScale)) {
      throw new ConfigError("cfgScale", `${title} takes ${limits.minCfgScale}-${limits.maxCfgScale}, got ${cfgScale}`);
    }
    if (!Number.isInteger(seed) || seed < 0 || seed > limits.maxSeed) throw new ConfigError("seeds", `${title} takes integer seeds 0-${limits.maxSeed}, got ${seed}`);
    if (quality !== "standard" && quality !== "premium") throw new ConfigError("quality", `must be standard or premium, got ${String(quality)}`);
  }
}

/** The registration of a Titan-shaped Bedrock editor (titan.ts, nova.ts). */
export function editorBackend(
  model: BedrockEditModel,
  o: { name: string; family: BedrockFamily; summary: string; make: new (client: BedrockRuntimeClient, modelId: string) => Generator },
): GeneratorBackend {
  const backend: GeneratorBackend = {
    name: o.name,
    summary: o.summary,
    needsAws: true,
    family: o.family,
    defaultModel: model.modelIds[model.modelIds.length - 1],
    sizeRules: model.sizeRules,
    seeds: { min: 0, max: model.limits.maxSeed, default: { from: 0, to: 0 } },
    options: {},
    resolve: (s) => {
      const modelId = s.modelId || backend.defaultModel!;
      if (familyOf(modelId) !== o.family) throw new ConfigError("modelId", `${modelId} is not a ${o.name} model (${model.title}: ${model.modelIds.join(", ")})`);
      return { modelId };
    },
    check: (s) => {
      const problem = checkSeedRange(backend, s);
      if (problem) throw new ConfigError("seeds", problem);
    },
    bedrockModels: (s) => [s.modelId],
    instanceKey: (s) => ["bedrock", s.modelId],
    open: async (s, ctx) => new o.make(createBedrockClient(ctx.aws, { timeoutMs: ctx.timeoutMs }), s.modelId),
  };
  return backend;
}
