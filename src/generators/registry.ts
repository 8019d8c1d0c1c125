/**
 * Every generator backend, registered in one place: the config's `generator` values, the CLI
 * help, enqueue's checks, the lifecycle gate and the workers all read this table. A new backend
 * is one file exporting a GeneratorBackend (backend.ts) and one line here.
 */
import type { ZodRawShape } from "zod";
import { ConfigError } from "../runtime/errors.js";
import type { GeneratorBackend } from "./backend.js";
import { familyOf } from "./bedrock-models.js";
import { compositeBackend } from "./composite.js";
import { novaBackend } from "./nova.js";
import { stabilityBackend } from "./stability.js";
import { titanBackend } from "./titan.js";

export const GENERATORS = {
  composite: compositeBackend,
  stability: stabilityBackend,
  titan: titanBackend,
  nova: novaBackend,
} as const satisfies Record<string, GeneratorBackend>;

export type GeneratorName = keyof typeof GENERATORS;
export const GENERATOR_NAMES = Object.keys(GENERATORS) as [GeneratorName, ...GeneratorName[]];

export function generatorBackend(name: string): GeneratorBackend {
  const backend = (GENERATORS as Record<string, GeneratorBackend>)[name];
  if (!backend) throw new ConfigError("generator", `unknown generator ${JSON.stringify(name)} (use one of ${GENERATOR_NAMES.join(", ")})`);
  return backend;
}

/** The generator a Bedrock model id belongs to (the old script named only a model). */
export function generatorOfModel(modelId: string): GeneratorName | undefined {
  const family = familyOf(modelId);
  return family && GENERATOR_NAMES.find((n) => (GENERATORS[n] as GeneratorBackend).family === family);
}

/** Every backend-only config key, with its validation: merged into the config and the job options. */
export const generatorOptionShapes = Object.assign({}, ...Object.values(GENERATORS).map((b: GeneratorBackend) => b.options)) as ZodRawShape;

/** The CLI help line for --generator. */
export function generatorHelp(): string {
  return GENERATOR_NAMES.map((n) => `${n}: ${GENERATORS[n].summary}`).join("; ");
}
