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
import { GENERATOR_NAMES, generatorBackend, generatorOfModel, generatorOptionShapes } from "../generators/registry.js";
import { parseExtend } from "../generators/stability-outpaint.js";

const seedRange = z
  .object({ from: z.number().int().min(0).max(4_294_967_294), to: z.number().int().min(0).max(4_294_967_294) })
  .refine((r) => r.from <= r.to, { message: "seed range start must not exceed its end" });

/** The text detector `--target <label>` uses unless textDetectorModel names another. */
export const DEFAULT_TEXT_DETECTOR_MODEL = "owlv2-base-patch16-ensemble";

export const configSchema = z.strictObject({
  /** What to mask: "face", "auto" (the main object), "boxes" (given per image in a manifest), or a label like "Car". */
  target: z.string().min(1).default("face"),
  /** Where boxes come from: local ONNX models, or Amazon Rekognition (AWS issue). */
  detector: z.enum(["local", "rekognition"]).default("local"),
  /** Face detector: a manifest name or a local .onnx file / model folder. */
  detectorModel: z.string().min(1).default("ultraface-rfb-320"),
  /** Label targets ("Car") with detector local: a text-prompted model (format "owlv2"); unset = owlv2-base-patch16-ensemble. */
  textDetectorModel: z.string().min(1).optional(),
  /** Score threshold 0-1 of the text-prompted detector (OWLv2 scores run lower than a face detector's); unset = 0.2. */
  textMinConfidence: z.number().min(0).max(1).optional(),
  /** Minimum detector confidence, 0-1. */
  minConfidence: z.number().min(0).max(1).default(0.7),
  /** Keep at most this many boxes per image (highest scores first). */
  maxObjects: z.number().int().min(1).max(64).default(16),
  /** Segment Anything model: a manifest name or a local model folder. */
  samModel: z.string().min(1).default("sam-vit-b"),
  /** target auto: a salient-object model (format "salient", e.g. birefnet-general) for a soft mask; unset = SAM prompted with the whole image. */
  salientModel: z.string().min(1).optional(),
  /** With salientModel: refine with SAM prompted by the salient mask's box (unset = true). */
  salientRefine: z.boolean().optional(),
  /** A second SAM pass that feeds the first mask back as mask_input (samexporter and sam2 formats). */
  refineMask: z.boolean().optional(),
  /**
   * Which of SAM's masks a prompt gets: "single" = mask 0, as SamPredictor.predict(multimask_output=False)
   * (the old script); "best" = the multimask candidate with the highest predicted IoU. Unset: single
   * where the decoder returns all its masks, else best (src/models/EXPORT.md says which formats can).
   */
  maskSelection: z.enum(["single", "best"]).optional(),
  executionProvider: z.enum(["cpu", "cuda"]).default("cpu"),
  /** onnxruntime intra-op threads per session; 0 = the cores this process may use / concurrency.mask, at least 1. */
  threads: z.number().int().min(0).max(256).default(0),
  /** Mask clean-up before generation. */
  growPx: z.number().int().min(-256).max(256).default(0),
  featherPx: z.number().min(0).max(256).default(2),
  fillHoles: z.boolean().default(true),
  /** fillHoles fills holes up to this fraction of the object's area (a soft mask's see-through holes never). */
  maxHoleFraction: z.number().min(0).max(1).default(0.01),
  minIslandArea: z.number().int().min(0).default(64),
  /** Estimate the object's own colour in the soft edge (multi-level foreground estimation) for cutout.png and composites. */
  estimateForeground: z.boolean().default(true),
  /** Images whose mask quality (0-1, mask.json's quality.score) is below this go to review instead of generation; unset = no bar. */
  minMaskQuality: z.number().min(0).max(1).optional(),
  /** Generator for each (prompt, seed): a backend of src/generators/registry.ts (composite, stability, titan, nova). */
  generator: z.enum(GENERATOR_NAMES).default("composite"),
  /** outpaint keeps the object and replaces the rest; inpaint replaces the object. */
  mode: z.enum(["outpaint", "inpaint"]).default("outpaint"),
  prompts: z.array(z.string().min(1).max(10_000)).min(1).max(1000).default(["studio white background"]),
  negativePrompt: z.string().max(10_000).optional(),
  /** Inclusive; unset = the generator's default (composite, Titan, Nova: 0-0; Stability: 1-1, as its 0 means random). */
  seeds: seedRange.optional(),
  /** Most results (prompts x seeds, a manifest row's own prompts too) per image: one image's flow of generate jobs stays small. Not an image option. */
  maxResultsPerImage: z.number().int().min(1).max(1_000_000).default(1000),
  /** Composite background: a colour ("#ffffff", "white"), "blur", or a path to an image. */
  background: z.string().min(1).default("#ffffff"),
  blurSigma: z.number().min(0.3).max(1000).default(25),
  /** Bedrock settings kept from the old script. */
  /** Bedrock model id; default per generator (stability: Stable Image Inpaint, or the --edit's service). Alone, it also picks the generator. */
  modelId: z.string().min(1).optional(),
  cfgScale: z.number().min(1.1).max(10).default(8),
  width: z.number().int().min(64).max(4096).optional(),
  height: z.number().int().min(64).max(4096).optional(),
  resize: z.boolean().default(false),
  /** Bedrock image quality and OUTPAINTING's outPaintingMode. */
  quality: z.enum(["standard", "premium"]).default("standard"),
  outpaintingMode: z.enum(["DEFAULT", "PRECISE"]).default("DEFAULT"),
  /** Bedrock only: describe the region in words (maskPrompt) instead of sending the SAM mask. */
  maskPrompt: z.string().min(1).max(1024).optional(),
  /**
   * Generator requests per time window for the whole fleet (e.g. "60/min"); unset = an adaptive
   * rate the fleet finds itself (cloud generators); "unlimited" = no limiter, throttles only.
   */
  rate: z.union([z.literal("unlimited"), z.strictObject({ max: z.number().int().min(1), durationMs: z.number().int().min(1) })]).optional(),
  /** Queue pause after a throttle when the service names no wait (with a rate: one limiter slot, if shorter); doubles per throttle with no success between, up to 16x. */
  throttleBackoffMs: z.number().int().min(10).max(600_000).default(2000),
  /** Per-request timeout of generator calls (Nova Canvas can take minutes). */
  requestTimeoutMs: z.number().int().min(1000).max(3_600_000).default(300_000),
  /** AWS: region, named profile, endpoint overrides (S3-compatible stores, local stand-ins). */
  region: z.string().min(1).optional(), // unset: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, us-east-1 (resolveRegion)
  awsProfile: z.string().min(1).optional(),
  s3Endpoint: z.url().optional(),
  bedrockEndpoint: z.url().optional(),
  rekognitionEndpoint: z.url().optional(),
  /** Output folder (or s3:// prefix in the AWS issue). */
  out: z.string().min(1).default("./out"),
  redisUrl: z.string().min(1).default("redis://127.0.0.1:6379"),
  /** CA bundle (PEM file) for a rediss:// redisUrl. */
  redisCa: z.string().min(1).optional(),
  /** Largest image accepted, in pixels (decompression-bomb guard). */
  maxPixels: z.number().int().min(1).default(100_000_000),
  /** Attempts per job for transient errors (bad input never retries). */
  attempts: z.number().int().min(1).max(100).default(3),
  /** A job whose worker stops renewing its lock (killed) is handed to another worker after this long. */
  lockDurationMs: z.number().int().min(1000).max(600_000).default(30_000),
  /** On SIGTERM/SIGINT: in-flight jobs get this long to finish, then they are handed back to the queue. */
  shutdownGraceMs: z.number().int().min(0).max(3_600_000).default(30_000),
  concurrency: z
    .strictObject({
      detect: z.number().int().min(1).max(256).default(2),
      mask: z.number().int().min(1).max(64).default(1),
      generate: z.number().int().min(1).max(256).default(4),
      finalize: z.number().int().min(1).max(256).default(2),
    })
    .default({ detect: 2, mask: 1, generate: 4, finalize: 2 }),
  /** Prometheus metrics at GET /metrics. Unset: 9464, or any free port when 9464 is taken; 0: any free port; a port given and taken is an error. */
  metricsPort: z.number().int().min(0).max(65535).optional(),
  metricsHost: z.string().min(1).default("0.0.0.0"),
  /** Model download cache. */
  cacheDir: z.string().min(1).optional(),
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

/** The variable of a config key: samModel -> MASKFLEET_SAM_MODEL; the model cache's is MASKFLEET_CACHE (as `--cache`). */
export function envNameOfKey(key: string): string {
  return key === "cacheDir" ? "MASKFLEET_CACHE" : `MASKFLEET_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
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
      merged[key] =
        key === "concurrency" && isPlainObject(prev) && isPlainObject(value) ? { ...prev, ...value } : value;
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
    warnings.push(`modelId ${modelId} is a ${modelGenerator} model; generator stability calls Stability AI Image Services instead (remove modelId from the config to silence this)`);
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
  return resolveConfig(
    opts.file ? readConfigFile(opts.file) : {},
    fromEnv(opts.env ?? process.env),
    opts.overrides ?? {},
  );
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
