/** The flags shared by `run`, `enqueue` and `worker`, mapped onto config keys. */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { loadConfig, parseSeedRange, type Config, type ConfigInput } from "../shared/config.js";
import { ConfigError } from "../shared/errors.js";
import { GENERATOR_NAMES, generatorHelp } from "../generators/registry.js";

export function addConfigFlags(cmd: Command): Command {
  return cmd
    .option("-c, --config <file>", "YAML config (the old script's keys load unchanged)")
    .option("-o, --out <dir>", "output folder")
    .option("-t, --target <target>", 'face | auto | boxes | a label (e.g. "Car")')
    .option("--detector <name>", "local | rekognition")
    .option("--detector-model <spec>", "face detector: manifest name or local .onnx / folder")
    .option("--min-confidence <n>", "detector threshold, 0-1", Number)
    .option("--text-detector-model <spec>", "label targets with --detector local: text-prompted detector (default owlv2-base-patch16-ensemble)")
    .option("--text-min-confidence <n>", "text-prompted detector threshold, 0-1 (default 0.2)", Number)
    .option("--sam-model <spec>", "segmenter: manifest name (sam-vit-b default, sam2.1-hiera-*, sam-vit-l/h, slimsam-77-uniform; see `maskfleet models list`) or local folder")
    .option("--refine-mask", "a second SAM pass that feeds the first mask back (samexporter, sam2 models)")
    .option("--mask-selection <rule>", "which SAM mask a box gets: single (mask 0, as the old script) | best (highest predicted IoU); default single where the model returns all masks")
    .option("--min-mask-quality <n>", "send images whose mask quality (0-1) is below this to review instead of generation", Number)
    .option("--no-estimate-foreground", "keep the photo's own colours in the soft edge of cutouts and composites (no foreground estimation)")
    .option("--salient-model <spec>", "target auto: salient-object model for a soft mask (manifest name or local .onnx / folder)")
    .option("--ep <provider>", "execution provider: cpu | cuda")
    .option("--threads <n>", "onnxruntime threads per session (0 = default: cores / mask concurrency, at least 1)", Number)
    .option("--generator <name>", `${GENERATOR_NAMES.join(" | ")} (${generatorHelp()})`)
    .option("--mode <mode>", "outpaint (new background) | inpaint (new object)")
    .option("-p, --prompts <prompt...>", "candidate prompts")
    .option("--prompts-file <file>", "candidate prompts, one per line")
    .option("--seeds <range>", 'seed range, inclusive: "34-46" or "34,46"')
    .option("--background <value>", 'composite background: colour ("#ffffff"), "blur", or an image path')
    .option("--grow <px>", "grow (or, negative, shrink) the mask by N px", Number)
    .option("--feather <px>", "feather the mask edge by N px", Number)
    .option("--model <id>", "Bedrock model id (default per generator and edit, e.g. us.stability.stable-image-inpaint-v1:0; `maskfleet models cloud` lists them)")
    .option("--edit <edit>", "stability: inpaint (a mask) | search-replace | erase | extend (Stable Outpaint only)")
    .option("--search-prompt <text>", "stability --edit search-replace: what to find and replace, e.g. background")
    .option("--style-preset <name>", "stability: a style preset, e.g. photographic")
    .option("--grow-mask <px>", "stability: the service's own grow_mask, 0-20 (default 0; --grow is maskfleet's)", Number)
    .option("--extend <l,r,u,d|square>", "stability: extend the canvas first with Stable Outpaint, pixels per side or square")
    .option("--creativity <n>", "stability --extend: Stable Outpaint's creativity, 0.1-1", Number)
    .option("--negative-prompt <text>", "what the generator should avoid")
    .option("--mask-prompt <text>", "Bedrock: describe the region in words instead of sending the SAM mask")
    .option("--quality <q>", "Bedrock: standard | premium")
    .option("--outpainting-mode <m>", "Bedrock: DEFAULT | PRECISE")
    .option("--cfg-scale <n>", "Bedrock: prompt adherence, 1.1-10", Number)
    .option("--rate <rate>", 'generator requests for the whole fleet, e.g. "60/min" or "2/s" (default: an adaptive rate the fleet finds; "unlimited": none)')
    .option("--region <region>", "AWS region")
    .option("--profile <name>", "AWS profile")
    .option("--s3-endpoint <url>", "S3-compatible endpoint")
    .option("--bedrock-endpoint <url>", "Bedrock Runtime endpoint override")
    .option("--rekognition-endpoint <url>", "Rekognition endpoint override")
    .option("--redis <url>", "Redis URL")
    .option("--redis-ca <file>", "CA bundle (PEM) for a rediss:// Redis")
    .option("--max-results-per-image <n>", "most prompts x seeds per image (default 1000)", Number)
    .option("--attempts <n>", "attempts per job for transient errors", Number)
    .option("--metrics-port <n>", "Prometheus metrics port (0 = any free port; default 9464, or any free one when taken)", Number)
    .option("--metrics-host <host>", "address the metrics endpoint listens on (default 0.0.0.0, all interfaces; 127.0.0.1: this host only)");
}

export interface ConfigFlags {
  config?: string;
  out?: string;
  target?: string;
  detector?: string;
  detectorModel?: string;
  minConfidence?: number;
  textDetectorModel?: string;
  textMinConfidence?: number;
  samModel?: string;
  salientModel?: string;
  refineMask?: boolean;
  maskSelection?: string;
  minMaskQuality?: number;
  estimateForeground?: boolean;
  ep?: string;
  threads?: number;
  generator?: string;
  mode?: string;
  prompts?: string[];
  promptsFile?: string;
  seeds?: string;
  background?: string;
  grow?: number;
  feather?: number;
  model?: string;
  negativePrompt?: string;
  maskPrompt?: string;
  quality?: string;
  outpaintingMode?: string;
  cfgScale?: number;
  edit?: string;
  searchPrompt?: string;
  stylePreset?: string;
  growMask?: number;
  extend?: string;
  creativity?: number;
  rate?: string;
  region?: string;
  profile?: string;
  s3Endpoint?: string;
  bedrockEndpoint?: string;
  rekognitionEndpoint?: string;
  redis?: string;
  redisCa?: string;
  maxResultsPerImage?: number;
  attempts?: number;
  metricsPort?: number;
  metricsHost?: string;
  concurrency?: number;
}

export function configFromFlags(flags: ConfigFlags, extra: ConfigInput = {}): Config {
  const overrides: ConfigInput = {
    out: flags.out,
    target: flags.target,
    detector: flags.detector,
    detectorModel: flags.detectorModel,
    minConfidence: flags.minConfidence,
    textDetectorModel: flags.textDetectorModel,
    textMinConfidence: flags.textMinConfidence,
    samModel: flags.samModel,
    salientModel: flags.salientModel,
    refineMask: flags.refineMask,
    maskSelection: flags.maskSelection,
    minMaskQuality: flags.minMaskQuality,
    estimateForeground: flags.estimateForeground === false ? false : undefined,
    executionProvider: flags.ep,
    threads: flags.threads,
    generator: flags.generator,
    mode: flags.mode,
    prompts: flags.promptsFile ? readPromptsFile(flags.promptsFile) : flags.prompts,
    seeds: flags.seeds !== undefined ? parseSeedRange(flags.seeds, "--seeds") : undefined,
    background: flags.background,
    growPx: flags.grow,
    featherPx: flags.feather,
    modelId: flags.model,
    negativePrompt: flags.negativePrompt,
    maskPrompt: flags.maskPrompt,
    quality: flags.quality,
    outpaintingMode: flags.outpaintingMode,
    cfgScale: flags.cfgScale,
    edit: flags.edit,
    searchPrompt: flags.searchPrompt,
    stylePreset: flags.stylePreset,
    growMask: flags.growMask,
    extend: flags.extend,
    creativity: flags.creativity,
    rate: flags.rate,
    region: flags.region,
    awsProfile: flags.profile,
    s3Endpoint: flags.s3Endpoint,
    bedrockEndpoint: flags.bedrockEndpoint,
    rekognitionEndpoint: flags.rekognitionEndpoint,
    redisUrl: flags.redis,
    redisCa: flags.redisCa,
    maxResultsPerImage: flags.maxResultsPerImage,
    attempts: flags.attempts,
    metricsPort: flags.metricsPort,
    metricsHost: flags.metricsHost,
    ...extra,
  };
  return loadConfig({ file: flags.config, overrides });
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
