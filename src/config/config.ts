/**
 * One validated configuration. Sources, later wins: defaults < YAML file < MASKFLEET_* environment
 * < CLI flags. The old single-image script's YAML keys (candidate_prompts, seed_range, ...) load
 * unchanged and are mapped onto the new keys; an invalid value fails with the key named.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { resolveRegion, type AwsSettings } from "../runtime/aws.js";
import { ConfigError } from "../runtime/errors.js";
import { generatorBackend, generatorOfModel, generatorOptionShapes } from "../generators/registry.js";
import { parseExtend } from "../generators/stability-outpaint.js";
import { envNameOfKey, tableShape } from "./table.js";

export { DEFAULT_TEXT_DETECTOR_MODEL, envNameOfKey } from "./table.js";

/** Every key's schema comes from the table (src/config/table.ts), a generator's own keys from its backend. */
export const configSchema = z.strictObject({
  ...tableShape,
  /** The keys only one generator reads (registered with it: src/generators/registry.ts). */
  ...generatorOptionShapes,
});

export type Config = Omit<z.infer<typeof configSchema>, "modelId" | "seeds"> & {
  modelId: string;
  seeds: { from: number; to: number };
  /** What the user should know about how the config was read (printed by the CLI before any work). */
  warnings: string[];
};
export type ConfigInput = Record<string, unknown>;

/** Known Meta SAM checkpoints of the old script -> the manifest's ONNX export of the same weights. */
const checkpointModels: Record<string, string> = {
  sam_vit_h_4b8939: "sam-vit-h",
  sam_vit_l_0b3195: "sam-vit-l",
  sam_vit_b_01ec64: "sam-vit-b",
};

/** Maps the old script's YAML keys onto the new ones; unknown keys pass through to fail validation. */
export function fromLegacyKeys(raw: ConfigInput): ConfigInput {
  const out: ConfigInput = {};
  for (const [key, value] of Object.entries(raw)) {
    switch (key) {
      case "candidate_prompts":
        out.prompts = value;
        break;
      case "seed_range":
        out.seeds = parseSeedRange(value, key);
        break;
      case "result_path":
        out.out = value;
        break;
      case "use_cuda":
        if (typeof value !== "boolean") throw new ConfigError(key, "expected true or false");
        out.executionProvider = value ? "cuda" : "cpu";
        break;
      case "target_region":
        out.target = value;
        break;
      case "checkpoint":
        out.samModel = checkpointToModel(value, key);
        break;
      default:
        out[key] = value;
    }
  }
  return out;
}

/** "34,46", "34-46", [34, 46] or {from, to} -> {from, to}, inclusive. */
export function parseSeedRange(value: unknown, key = "seeds"): { from: number; to: number } {
  let parts: unknown[];
  if (typeof value === "string") parts = value.split(/[,-]/).map((s) => s.trim());
  else if (typeof value === "number") parts = [value, value];
  else if (Array.isArray(value)) parts = value;
  else if (value && typeof value === "object" && "from" in value && "to" in value) parts = [value.from, value.to];
  else throw new ConfigError(key, `expected a range like "34,46", got ${JSON.stringify(value)}`);
  if (parts.length === 1) parts = [parts[0], parts[0]];
  const nums = parts.map((p) => (typeof p === "number" ? p : Number(p)));
  if (nums.length !== 2 || nums.some((n) => !Number.isInteger(n))) {
    throw new ConfigError(key, `expected two whole numbers like "34,46", got ${JSON.stringify(value)}`);
  }
  return { from: nums[0] as number, to: nums[1] as number };
}

const rateUnits: Record<string, number> = { s: 1000, sec: 1000, second: 1000, m: 60_000, min: 60_000, minute: 60_000, h: 3_600_000, hour: 3_600_000 };

/** "60/min", "2/s", "1000/hour", or a number (per minute) -> {max, durationMs}. */
export function parseRate(value: string | number, key = "rate"): { max: number; durationMs: number } {
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 1) throw new ConfigError(key, `expected a whole number of requests per minute >= 1, got ${value}`);
    return { max: value, durationMs: 60_000 };
  }
  const m = /^\s*(\d+)\s*\/\s*(\d*)\s*([a-z]+)\s*$/i.exec(value);
  const unit = m ? rateUnits[(m[3] as string).toLowerCase()] : undefined;
  const max = m ? Number(m[1]) : 0;
  if (!m || !unit || max < 1) throw new ConfigError(key, `expected requests per time like "60/min", "2/s" or "1000/hour", got ${JSON.stringify(value)}`);
  return { max, durationMs: unit * (m[2] ? Number(m[2]) : 1) };
}

function checkpointToModel(value: unknown, key: string): string {
  if (typeof value !== "string") throw new ConfigError(key, "expected a checkpoint name");
  const base = value.replace(/^.*[\\/]/, "").replace(/\.pth$/, "");
  const model = checkpointModels[base];
  if (model) return model;
  if (/\.pth$/.test(value)) {
    throw new ConfigError(key, `${value} is a PyTorch checkpoint; export it to ONNX (see src/models/EXPORT.md) and pass the folder as samModel`);
  }
  return value;
}

/** Every config key's variable. */
export function configEnvNames(): string[] {
  return Object.keys(configSchema.shape).map(envNameOfKey);
}

/**
 * MASKFLEET_SAM_MODEL=... -> { samModel: "..." }; values parsed as JSON when they look like it. A
 * list (prompts) is one item per line, or comma-separated on one line, or a JSON array.
 */
export function fromEnv(env: NodeJS.ProcessEnv): ConfigInput {
  const out: ConfigInput = {};
  for (const [key, schema] of Object.entries(configSchema.shape)) {
    const value = env[envNameOfKey(key)];
    if (value === undefined || value === "") continue;
    out[key] = isListSchema(schema) && !value.trim().startsWith("[") ? splitList(value) : parseScalar(value);
  }
  return out;
}

function isListSchema(schema: z.ZodType): boolean {
  let s: z.ZodType = schema;
  while (s instanceof z.ZodOptional || s instanceof z.ZodDefault) s = s.def.innerType as z.ZodType;
  return s instanceof z.ZodArray;
}

/** "a\nb" -> [a, b]; "a, b" -> [a, b]; blank items dropped. */
export function splitList(text: string): string[] {
  return text
    .split(text.includes("\n") ? /\r?\n/ : ",")
    .map((item) => item.trim())
    .filter(Boolean);
}

function parseScalar(text: string): unknown {
  if (/^(true|false|-?\d+(\.\d+)?|\[.*\]|\{.*\})$/s.test(text.trim())) {
    try {
      return JSON.parse(text);
    } catch {
      return text; // not JSON after all: keep the text, validation names the key if it is wrong
    }
  }
  return text;
}

export function readConfigFile(path: string): ConfigInput {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError("config", `cannot read ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    // The parser's message quotes the offending lines: say where, never what (a config may be any file).
    const e = err as { message?: string; linePos?: { line: number; col: number }[] };
    const where = e.linePos?.[0] ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : "";
    const why = (e.message ?? "").split(/ at line \d+|\n/)[0];
    throw new ConfigError("config", `${path} is not valid YAML${where}: ${why}`);
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError("config", `${path} must hold a mapping of keys`);
  return fromLegacyKeys(raw as ConfigInput);
}

/** Merge sources (later wins, nested `concurrency` merged key by key) and validate. */
export function resolveConfig(...sources: ConfigInput[]): Config {
  const merged: ConfigInput = {};
  for (const source of sources) {
    for (const [key, value] of Object.entries(source)) {
      if (value === undefined) continue;
      const prev = merged[key];
      merged[key] = key === "concurrency" && isPlainObject(prev) && isPlainObject(value) ? { ...prev, ...value } : value;
    }
  }
  if (merged.seeds !== undefined) merged.seeds = parseSeedRange(merged.seeds, "seeds");
  if ((typeof merged.rate === "string" && merged.rate !== "unlimited") || typeof merged.rate === "number") merged.rate = parseRate(merged.rate, "rate");
  if (merged.extend !== undefined) merged.extend = parseExtend(merged.extend, "extend");
  // The old script had only Bedrock: a config naming a model and no generator means that model.
  if (merged.generator === undefined && typeof merged.modelId === "string") merged.generator = generatorOfModel(merged.modelId) ?? merged.generator;
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue?.code === "unrecognized_keys") {
      throw new ConfigError(issue.keys.join(", "), "unknown key (see the README's config reference)");
    }
    const key = issue?.path.length ? issue.path.join(".") : "config";
    throw new ConfigError(key, issue?.message ?? "invalid");
  }
  const data = parsed.data;
  const backend = generatorBackend(data.generator);
  const warnings: string[] = [];
  let modelId = data.modelId ?? "";
  // The migration from the old script: `generator: stability` added to a YAML that still names a Titan/Nova model.
  const modelGenerator = modelId ? generatorOfModel(modelId) : undefined;
  if (data.generator === "stability" && (modelGenerator === "titan" || modelGenerator === "nova")) {
    warnings.push(
      `modelId ${modelId} is a ${modelGenerator} model; generator stability calls Stability AI Image Services instead (remove modelId from the config to silence this)`,
    );
    modelId = "";
  }
  const settled = { ...data, modelId, seeds: data.seeds ?? backend.seeds.default, warnings };
  const config = { ...settled, ...backend.resolve(settled) } as Config;
  checkResultsPerImage(config.prompts.length, config.seeds, config.maxResultsPerImage, "seeds");
  return config;
}

/**
 * prompts x seeds of one image against maxResultsPerImage: a ConfigError naming `key` ("seeds",
 * or a manifest row's prompts) and the count, e.g. "3 prompts x 10,000,001 seeds = 30,000,003
 * results per image, over maxResultsPerImage (1,000)".
 */
export function checkResultsPerImage(prompts: number, seeds: { from: number; to: number }, max: number, key: string): void {
  const seedCount = seeds.to - seeds.from + 1;
  const results = prompts * seedCount;
  if (results <= max) return;
  const n = (v: number) => v.toLocaleString("en-US");
  throw new ConfigError(
    key,
    `${n(prompts)} prompt${prompts === 1 ? "" : "s"} x ${n(seedCount)} seed${seedCount === 1 ? "" : "s"} = ${n(results)} results per image, over maxResultsPerImage (${n(max)})`,
  );
}

/** The usual stack: defaults < file < env < overrides. */
export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; overrides?: ConfigInput } = {}): Config {
  return resolveConfig(opts.file ? readConfigFile(opts.file) : {}, fromEnv(opts.env ?? process.env), opts.overrides ?? {});
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The AWS client settings of a config; the region resolved as the SDK does (resolveRegion, reading `env`). */
export function awsSettingsOf(config: Config, env: NodeJS.ProcessEnv = process.env): AwsSettings & { region: string } {
  return {
    region: resolveRegion({ region: config.region, profile: config.awsProfile, env }),
    ...(config.awsProfile && { profile: config.awsProfile }),
    endpoints: { s3: config.s3Endpoint, bedrock: config.bedrockEndpoint, rekognition: config.rekognitionEndpoint },
  };
}
