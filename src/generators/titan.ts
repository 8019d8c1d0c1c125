/**
 * Amazon Titan Image Generator G1 (`amazon.titan-image-generator-v1`, `amazon.titan-image-generator-v2:0`):
 * the body of bedrock-editor.ts (Amazon Bedrock user guide, "Amazon Titan Image Generator G1
 * models"); v1 and v2 take the same body for INPAINTING / OUTPAINTING (v2 adds other task types:
 * image conditioning, colour guidance, background removal). No width/height: the output has the
 * input's size.
 *
 * Limits: text, negativeText, maskPrompt <= 512 characters; cfgScale 1.1-10; seed
 * 0-2,147,483,646; image: TITAN_SIZE_RULES in bedrock-image.ts (longer side <= 1,408, PNG <= 5 MB).
 */
import type { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import type { BedrockGeneratorOptions } from "./bedrock-client.js";
import { BedrockImageEditor, editorBackend, type BedrockEditModel } from "./bedrock-editor.js";
import { TITAN_SIZE_RULES } from "./bedrock-image.js";
import { modelIdsOf } from "./bedrock-models.js";

export const TITAN: BedrockEditModel = {
  title: "Titan",
  modelIds: modelIdsOf("titan"),
  limits: { maxText: 512, minCfgScale: 1.1, maxCfgScale: 10, maxSeed: 2_147_483_646 },
  sizeRules: TITAN_SIZE_RULES,
};

export class TitanGenerator extends BedrockImageEditor {
  constructor(client: BedrockRuntimeClient, modelId = TITAN.modelIds[TITAN.modelIds.length - 1]!, opts: BedrockGeneratorOptions = {}) {
    super(TITAN, client, modelId, opts);
  }
}

export const titanBackend = editorBackend(TITAN, {
  name: "titan",
  family: "titan",
  summary: "Amazon Titan Image Generator (end of life on Bedrock 2026-06-30; accounts that still have access)",
  make: TitanGenerator,
});
