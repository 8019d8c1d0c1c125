/** Opens the generator an image's options name: composite (local) or a Bedrock model. */
import { awsSettingsOf, type Config } from "../shared/config.js";
import type { ImageOptions } from "../shared/jobs.js";
import { createBedrockGenerator } from "./bedrock.js";
import { CompositeGenerator, parseBackground } from "./composite.js";
import type { Generator } from "./generator.js";

/** The options that pick a generator instance; jobs with equal keys share one. */
export function generatorKey(o: ImageOptions): string {
  return JSON.stringify(o.generator === "composite" ? ["composite", o.background, o.blurSigma, o.maxPixels] : ["bedrock", o.modelId]);
}

export async function openGenerator(o: ImageOptions, config: Config): Promise<Generator> {
  if (o.generator === "composite") return CompositeGenerator.open(parseBackground(o.background), o.blurSigma, o.maxPixels);
  return createBedrockGenerator(o.modelId, awsSettingsOf(config), { timeoutMs: config.requestTimeoutMs });
}
