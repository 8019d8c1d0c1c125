/**
 * The Bedrock generator for a model id: Titan Image Generator v1/v2 or Nova Canvas, each on its
 * own BedrockRuntimeClient (HTTP/1.1, one attempt per call; see bedrock-client.ts), which
 * close() destroys.
 */
import type { AwsSettings } from "../shared/aws.js";
import { ConfigError } from "../shared/errors.js";
import { createBedrockClient } from "./bedrock-client.js";
import type { Generator } from "./generator.js";
import { NOVA_CANVAS, NovaCanvasGenerator } from "./nova.js";
import { TITAN, TitanGenerator } from "./titan.js";

export interface BedrockGeneratorFactoryOptions {
  /** Limit for one InvokeModel call, in ms (default 300 000). */
  timeoutMs?: number;
}

/** Model id prefixes and the generator each one gets. */
const FAMILIES = [
  { prefix: "amazon.titan-image-generator-v", make: TitanGenerator },
  { prefix: "amazon.nova-canvas-v", make: NovaCanvasGenerator },
] as const;

export const KNOWN_BEDROCK_IMAGE_MODELS: readonly string[] = [...TITAN.modelIds, ...NOVA_CANVAS.modelIds];

/** A Generator for `modelId`; a ConfigError("modelId", ...) for a model id of no known family. */
export function createBedrockGenerator(modelId: string, aws: AwsSettings, opts: BedrockGeneratorFactoryOptions = {}): Generator {
  const family = FAMILIES.find((f) => modelId.startsWith(f.prefix));
  if (!family) {
    throw new ConfigError("modelId", `${JSON.stringify(modelId)} is not a supported Bedrock image model (use one of ${KNOWN_BEDROCK_IMAGE_MODELS.join(", ")})`);
  }
  const client = createBedrockClient(aws, opts);
  return new family.make(client, modelId, { ownsClient: true });
}
