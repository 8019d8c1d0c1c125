/**
 * A Titan Image Generator v1/v2 or Nova Canvas generator for a model id, on its own
 * BedrockRuntimeClient (HTTP/1.1, one attempt per call; see bedrock-client.ts), which close()
 * destroys. The workers open generators through the registry (registry.ts); this is the direct
 * way for code that holds a model id.
 */
import type { AwsSettings } from "../runtime/aws.js";
import { ConfigError } from "../runtime/errors.js";
import { createBedrockClient } from "./bedrock-client.js";
import { familyOf } from "./bedrock-models.js";
import type { Generator } from "./generator.js";
import { NOVA_CANVAS, NovaCanvasGenerator } from "./nova.js";
import { TITAN, TitanGenerator } from "./titan.js";

export interface BedrockGeneratorFactoryOptions {
  /** Limit for one InvokeModel call, in ms (default 300 000). */
  timeoutMs?: number;
}

/** The Titan-shaped editor of each family. */
const EDITORS = { titan: TitanGenerator, nova: NovaCanvasGenerator } as const;

export const KNOWN_BEDROCK_IMAGE_MODELS: readonly string[] = [...TITAN.modelIds, ...NOVA_CANVAS.modelIds];

/** A Generator for `modelId`; a ConfigError("modelId", ...) for a model id of no Titan-shaped family. */
export function createBedrockGenerator(modelId: string, aws: AwsSettings, opts: BedrockGeneratorFactoryOptions = {}): Generator {
  const family = familyOf(modelId);
  if (family !== "titan" && family !== "nova") {
    throw new ConfigError("modelId", `${JSON.stringify(modelId)} is not a supported Titan or Nova Canvas model (use one of ${KNOWN_BEDROCK_IMAGE_MODELS.join(", ")})`);
  }
  return new EDITORS[family](createBedrockClient(aws, opts), modelId, { ownsClient: true });
}
