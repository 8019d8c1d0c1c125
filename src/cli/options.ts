/**
 * The config flags of `run`, `enqueue` and `worker`, mapped onto config keys. Each flag also reads
 * MASKFLEET_<FLAG> (`--ep` -> MASKFLEET_EP; `--help` shows it); the config keys' own names
 * (MASKFLEET_EXECUTION_PROVIDER) still work. Numbers and choices are checked against the config
 * schema as they are parsed, so a bad value names the flag and the range.
 */
import { existsSync, readFileSync } from "node:fs";
import { InvalidArgumentError, Option, type Command } from "commander";
import { z } from "zod";
import { configEnvNames, configSchema, loadConfig, parseSeedRange, type Config, type ConfigInput } from "../config/config.js";
import { ConfigError } from "../runtime/errors.js";
import { generatorHelp } from "../generators/registry.js";
import { envNameOfFlag } from "./env.js";

/** Who reads a flag: every process (`process`), or the jobs a producer enqueues (`job`): workers ignore those. */
type Scope = "process" | "job";

interface ConfigFlag {
  flags: string;
  description: string;
  /** The config key it sets (none: read by configFromFlags itself). */
  key?: string;
  scope: Scope;
  /** Worker help text where a worker reads it differently (the model it warms up). */
  worker?: string;
}

const flagTable: ConfigFlag[] = [
  { flags: "-c, --config <file>", description: "YAML config (the old script's keys load unchanged; default: ./maskfleet.yaml if there is one)", scope: "process" },
  { flags: "-o, --out <dir>", description: "output folder", key: "out", scope: "job", worker: "an s3:// output: AWS credentials are checked at start (jobs carry their own output)" },
  { flags: "-t, --target <target>", description: 'face | auto | boxes | a label (e.g. "Car")', key: "target", scope: "job" },
  { flags: "--detector <name>", description: "where boxes come from", key: "detector", scope: "job", worker: "detect: rekognition has its AWS credentials checked at start (jobs carry their own)" },
  { flags: "--detector-model <spec>", description: "face detector: manifest name or local .onnx / folder", key: "detectorModel", scope: "job" },
  { flags: "--min-confidence <n>", description: "detector threshold", key: "minConfidence", scope: "job" },
  { flags: "--text-detector-model <spec>", description: "label targets with --detector local: text-prompted detector (default owlv2-base-patch16-ensemble)", key: "textDetectorModel", scope: "job" },
  { flags: "--text-min-confidence <n>", description: "text-prompted detector threshold (default 0.2)", key: "textMinConfidence", scope: "job" },
  {
    flags: "--sam-model <spec>",
    description: "segmenter: manifest name (sam-vit-b default, sam2.1-hiera-*, sam-vit-l/h, slimsam-77-uniform; see `maskfleet models list`) or local folder",
    key: "samModel",
    scope: "job",
    worker: "mask: the segmenter warmed up before the first job (jobs name their own)",
  },
  {
    flags: "--refine-mask",
    description: "a second SAM pass that feeds the first mask back (samexporter, sam2 models)",
    key: "refineMask",
    scope: "job",
    worker: "mask: warm the segmenter up with the refinement pass (jobs say whether they refine)",
  },
  {
    flags: "--mask-selection <rule>",
    description: "which SAM mask a box gets: single (mask 0, as the old script) | best (highest predicted IoU); default single where the model returns all masks",
    key: "maskSelection",
    scope: "job",
    worker: "mask: warm the segmenter up for this rule (jobs carry their own)",
  },
  { flags: "--min-mask-quality <n>", description: "send images whose mask quality is below this to review instead of generation", key: "minMaskQuality", scope: "job" },
  { flags: "--no-estimate-foreground", description: "keep the photo's own colours in the soft edge of cutouts and composites (no foreground estimation)", key: "estimateForeground", scope: "job" },
  {
    flags: "--salient-model <spec>",
    description: "target auto: salient-object model for a soft mask (manifest name or local .onnx / folder)",
    key: "salientModel",
    scope: "job",
    worker: "mask: the salient-object model warmed up before the first job (jobs name their own)",
  },
  { flags: "--ep <provider>", description: "execution provider", key: "executionProvider", scope: "process" },
  { flags: "--threads <n>", description: "onnxruntime threads per session (0 = default: cores / mask concurrency, at least 1)", key: "threads", scope: "process" },
  { flags: "--cache <dir>", description: "model cache folder (default ~/.cache/maskfleet/models)", key: "cacheDir", scope: "process" },
  { flags: "--generator <name>", description: generatorHelp(), key: "generator", scope: "job", worker: "generate: the generator whose Bedrock models are checked at start (jobs carry their own)" },
  { flags: "--mode <mode>", description: "outpaint (new background) | inpaint (new object)", key: "mode", scope: "job" },
  { flags: "-p, --prompts <prompt...>", description: "candidate prompts (environment: one per line, or comma-separated)", key: "prompts", scope: "job" },
  { flags: "--prompts-file <file>", description: "candidate prompts, one per line", scope: "job" },
  { flags: "--seeds <range>", description: 'seed range, inclusive: "34-46" or "34,46"', scope: "job" },
  { flags: "--background <value>", description: 'composite background: colour ("#ffffff"), "blur", or an image path', key: "background", scope: "job" },
  { flags: "--grow <px>", description: "grow (or, negative, shrink) the mask by N px", key: "growPx", scope: "job" },
  { flags: "--feather <px>", description: "feather the mask edge by N px", key: "featherPx", scope: "job" },
  { flags: "--model <id>", description: "Bedrock model id (default per generator and edit, e.g. us.stability.stable-image-inpaint-v1:0; `maskfleet models cloud` lists them)", key: "modelId", scope: "job", worker: "generate: the Bedrock model checked at start (jobs carry their own)" },
  { flags: "--edit <edit>", description: "stability: inpaint (a mask) | search-replace | erase | extend (Stable Outpaint only)", key: "edit", scope: "job", worker: "generate: the Stability edit whose model is checked at start (jobs carry their own)" },
  { flags: "--search-prompt <text>", description: "stability --edit search-replace: what to find and replace, e.g. background", key: "searchPrompt", scope: "job" },
  { flags: "--style-preset <name>", description: "stability: a style preset", key: "stylePreset", scope: "job" },
  { flags: "--grow-mask <px>", description: "stability: the service's own grow_mask (default 0; --grow is maskfleet's)", key: "growMask", scope: "job" },
  { flags: "--extend <l,r,u,d|square>", description: "stability: extend the canvas first with Stable Outpaint, pixels per side or square", key: "extend", scope: "job", worker: "generate: with Stable Outpaint checked at start too (jobs carry their own)" },
  { flags: "--creativity <n>", description: "stability --extend: Stable Outpaint's creativity", key: "creativity", scope: "job" },
  { flags: "--negative-prompt <text>", description: "what the generator should avoid", key: "negativePrompt", scope: "job" },
  { flags: "--mask-prompt <text>", description: "Bedrock: describe the region in words instead of sending the SAM mask", key: "maskPrompt", scope: "job" },
  { flags: "--quality <q>", description: "Bedrock image quality", key: "quality", scope: "job" },
  { flags: "--outpainting-mode <m>", description: "Bedrock outpainting mode", key: "outpaintingMode", scope: "job" },
  { flags: "--cfg-scale <n>", description: "Bedrock: prompt adherence", key: "cfgScale", scope: "job" },
  { flags: "--rate <rate>", description: 'generator requests for the whole fleet, e.g. "60/min" or "2/s" (default: an adaptive rate the fleet finds; "unlimited": none)', key: "rate", scope: "process" },
  { flags: "--region <region>", description: "AWS region", key: "region", scope: "process" },
  { flags: "--profile <name>", description: "AWS profile", key: "awsProfile", scope: "process" },
  { flags: "--s3-endpoint <url>", description: "S3-compatible endpoint", key: "s3Endpoint", scope: "process" },
  { flags: "--bedrock-endpoint <url>", description: "Bedrock Runtime endpoint override", key: "bedrockEndpoint", scope: "process" },
  { flags: "--rekognition-endpoint <url>", description: "Rekognition endpoint override", key: "rekognitionEndpoint", scope: "process" },
  { flags: "--redis <url>", description: "Redis URL (default redis://127.0.0.1:6379; also MASKFLEET_REDIS_URL)", key: "redisUrl", scope: "process" },
  { flags: "--redis-ca <file>", description: "CA bundle (PEM) for a rediss:// Redis", key: "redisCa", scope: "process" },
  { flags: "--max-results-per-image <n>", description: "most prompts x seeds per image (default 1000)", key: "maxResultsPerImage", scope: "job" },
  { flags: "--attempts <n>", description: "attempts per job for transient errors", key: "attempts", scope: "process" },
  { flags: "--metrics-port <n>", description: "Prometheus metrics port (0 = any free port; default 9464, or any free one when taken)", key: "metricsPort", scope: "process" },
  { flags: "--metrics-host <host>", description: "address the metrics endpoint listens on (default 0.0.0.0, all interfaces; 127.0.0.1: this host only)", key: "metricsHost", scope: "process" },
];

const keyEnvNames = new Set(configEnvNames());

/** A config key's schema without its optional/default wrappers. */
function schemaOf(key: string): z.ZodType | undefined {
  let s = (configSchema.shape as Record<string, z.ZodType | undefined>)[key];
  while (s instanceof z.ZodOptional || s instanceof z.ZodDefault) s = s.def.innerType as z.ZodType;
  return s;
}

const unbounded = (n: number | null | undefined) => n === null || n === undefined || !Number.isFinite(n) || Math.abs(n) >= Number.MAX_SAFE_INTEGER;

/** "a number 0-1", "a whole number >= 1", "a whole number -256 to 256": what a number flag takes. */
export function numberRangeText(schema: z.ZodNumber): string {
  const { minValue: min, maxValue: max } = schema;
  const kind = schema.isInt ? "a whole number" : "a number";
  if (!unbounded(min) && !unbounded(max)) return `${kind} ${min}${(min as number) < 0 ? " to " : "-"}${max}`;
  if (!unbounded(min)) return `${kind} >= ${min}`;
  if (!unbounded(max)) return `${kind} <= ${max}`;
  return kind;
}

/** A parser for a number flag that keeps to its config key's range: "expected a number 0-1, got abc". */
export function numberParser(schema: z.ZodNumber): (value: string) => number {
  const what = numberRangeText(schema);
  return (value) => {
    const n = value.trim() === "" ? NaN : Number(value);
    const ok = Number.isFinite(n) && (!schema.isInt || Number.isInteger(n)) && n >= (schema.minValue ?? -Infinity) && n <= (schema.maxValue ?? Infinity);
    if (!ok) throw new InvalidArgumentError(`expected ${what}, got ${value}`);
    return n;
  };
}

/** The commander option of a table row: its MASKFLEET_ variable, its parser or choices from the schema. */
function optionOf(row: ConfigFlag, forWorker: boolean): Option {
  const option = new Option(row.flags, forWorker && row.worker ? row.worker : row.description);
  const schema = row.key ? schemaOf(row.key) : undefined;
  if (schema instanceof z.ZodNumber) option.argParser(numberParser(schema));
  else if (schema instanceof z.ZodEnum) option.choices(schema.options.map(String));
  // A variable that is also a config key's (MASKFLEET_SAM_MODEL) is read with the config, as JSON
  // when it looks like it, a list per line; commander reads the others (MASKFLEET_EP), which win.
  const env = envNameOfFlag(option);
  if (keyEnvNames.has(env) || !option.required) option.description += ` (env: ${row.key === "estimateForeground" ? `${env}=false` : env})`;
  else option.env(env);
  return option;
}

/** The config flags; a worker's help shows only those a worker reads: the others are hidden, and warned about when given. */
export function addConfigFlags(cmd: Command, opts: { worker?: boolean } = {}): Command {
  for (const row of flagTable) {
    const option = optionOf(row, opts.worker === true);
    if (opts.worker && row.scope === "job" && !row.worker) option.hideHelp();
    cmd.addOption(option);
  }
  return cmd;
}

/** The variables of the config flags (MASKFLEET_EP, MASKFLEET_CONFIG, ...). */
export function configFlagEnvNames(): string[] {
  return flagTable.map((row) => envNameOfFlag(new Option(row.flags)));
}

/** The job flags given on a worker's command line: jobs carry those settings, so the worker ignores them. */
export function ignoredByWorker(cmd: Command): string[] {
  return flagTable
    .filter((row) => row.scope === "job" && !row.worker)
    .map((row) => cmd.options.find((o) => o.flags === row.flags))
    .filter((o): o is Option => o !== undefined && cmd.getOptionValueSource(o.attributeName()) === "cli")
    .map((o) => o.long as string);
}

export type ConfigFlags = Record<string, unknown> & { config?: string; promptsFile?: string; seeds?: string; concurrency?: number };

/**
 * The config of these flags: defaults < YAML file (--config, MASKFLEET_CONFIG, ./maskfleet.yaml) <
 * environment < flags. A worker's config leaves the job flags out: jobs carry those settings.
 */
export function configFromFlags(flags: ConfigFlags, extra: ConfigInput = {}, opts: { worker?: boolean } = {}): Config {
  const overrides: ConfigInput = {};
  for (const row of flagTable) {
    if (!row.key || (opts.worker && row.scope === "job" && !row.worker)) continue;
    const attr = new Option(row.flags).attributeName();
    // --no-estimate-foreground: only `false` is a choice the user made; `true` is commander's default.
    if (row.key === "estimateForeground") overrides[row.key] = flags[attr] === false ? false : undefined;
    else overrides[row.key] = flags[attr];
  }
  if (flags.promptsFile && !opts.worker) overrides.prompts = readPromptsFile(flags.promptsFile);
  if (flags.seeds !== undefined && !opts.worker) overrides.seeds = parseSeedRange(flags.seeds, "--seeds");
  return loadConfig({ file: flags.config ?? defaultConfigFile(), overrides: { ...overrides, ...extra } });
}

/** ./maskfleet.yaml (or .yml) in the working folder, when no config is named. */
export function defaultConfigFile(cwd = process.cwd()): string | undefined {
  return ["maskfleet.yaml", "maskfleet.yml"].map((name) => `${cwd}/${name}`).find((path) => existsSync(path));
}

function readPromptsFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError("--prompts-file", `cannot read ${file}: ${(err as Error).message}`);
  }
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
}
