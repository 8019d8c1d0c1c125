/**
 * What a generator backend registers (registry.ts): its name and help line, the config keys only
 * it reads (a zod shape, merged into the config and the job options), whether it needs AWS, its
 * seed range, the checks a run's settings must pass before any work, the Bedrock models it will
 * call (for the lifecycle gate), and how a worker opens it. A new backend is one file that exports
 * one of these plus one line in registry.ts.
 */
import type { z } from "zod";
import type { AwsSettings } from "../runtime/aws.js";
import type { BedrockFamily } from "./bedrock-models.js";
import type { Generator } from "./generator.js";
import type { SizeRules } from "./bedrock-image.js";

/** The settings a backend reads: the run's config or an image job's options (both carry these keys). */
export interface GeneratorSettings {
  generator: string;
  modelId: string;
  mode: "outpaint" | "inpaint";
  seeds: { from: number; to: number };
  prompts: string[];
  [key: string]: unknown;
}

export interface OpenContext {
  aws: AwsSettings;
  /** Limit for one request, ms. */
  timeoutMs: number;
}

export interface GeneratorBackend {
  readonly name: string;
  /** One line for the CLI help. */
  readonly summary: string;
  readonly needsAws: boolean;
  /** Bedrock backends: the family of model ids they take, and the default one. */
  readonly family?: BedrockFamily;
  readonly defaultModel?: string;
  /** The image size rules of the service (fitting is automatic); absent for local backends. */
  readonly sizeRules?: SizeRules;
  /** Seeds this backend can make a result again from, and the range used when none is given. */
  readonly seeds: { min: number; max: number; default: { from: number; to: number } };
  /** The config keys only this backend reads, with their validation and defaults. */
  readonly options: z.ZodRawShape;
  /**
   * The settings this backend derives once the config is read: the model id (given, checked to
   * be of this backend, or the default) and anything that follows from it. A ConfigError naming
   * the key for a model id of another backend.
   */
  resolve(settings: GeneratorSettings): Record<string, unknown>;
  /** Refuses settings that cannot work (a ConfigError naming the key), before any work. */
  check(settings: GeneratorSettings): void | Promise<void>;
  /** The Bedrock model ids a run with these settings will call (checked by the lifecycle gate). */
  bedrockModels(settings: GeneratorSettings): string[];
  /** The settings that pick an instance: jobs with equal keys share one generator in a process. */
  instanceKey(settings: GeneratorSettings): unknown[];
  open(settings: GeneratorSettings, ctx: OpenContext): Promise<Generator>;
}

/** The seed checks every backend shares. */
export function checkSeedRange(backend: GeneratorBackend, settings: GeneratorSettings, why = ""): string | null {
  const { from, to } = settings.seeds;
  const { min, max } = backend.seeds;
  if (from < min || to > max) return `${settings.modelId || backend.name} takes seeds ${min}-${max}${why}; the range is ${from}-${to}`;
  return null;
}
