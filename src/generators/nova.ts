/**
 * Amazon Nova Canvas (`amazon.nova-canvas-v1:0`): the body of bedrock-editor.ts (Amazon Nova user
 * guide, "Image generation and editing"), with no width/height for INPAINTING / OUTPAINTING (the
 * output has the input's size). cfgScale is sent as given (the service's default, 6.5, applies
 * only when it is left out). Nova may return fewer images than asked: none is a RejectedError.
 *
 * Limits: text, negativeText, maskPrompt 1-1,024 characters (empty ones are left out); cfgScale
 * 1.1-10; seed 0-858,993,459; image: NOVA_SIZE_RULES in bedrock-image.ts (sides 320-4,096 and
 * divisible by 16, aspect 1:4-4:1, fewer than 4,194,304 pixels). Use a long read timeout.
 */
import type { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import type { BedrockGeneratorOptions } from "./bedrock-client.js";
import { BedrockImageEditor, editorBackend, type BedrockEditModel } from "./bedrock-editor.js";
import { NOVA_SIZE_RULES } from "./bedrock-image.js";
import { modelIdsOf } from "./bedrock-models.js";

export const NOVA_CANVAS: BedrockEditModel = {
  title: "Nova Canvas",
  modelIds: modelIdsOf("nova"),
  limits: { maxText: 1024, minCfgScale: 1.1, maxCfgScale: 10, maxSeed: 858_993_459 },
  sizeRules: NOVA_SIZE_RULES,
};

export class NovaCanvasGenerator extends BedrockImageEditor {
  constructor(client: BedrockRuntimeClient, modelId = NOVA_CANVAS.modelIds[0]!, opts: BedrockGeneratorOptions = {}) {
    super(NOVA_CANVAS, client, modelId, opts);
  }
}

export const novaBackend = editorBackend(NOVA_CANVAS, {
  name: "nova",
  family: "nova",
  summary: "Amazon Nova Canvas (end of life on Bedrock 2026-09-30; accounts that still have access)",
  make: NovaCanvasGenerator,
});
