/**
 * Every config key, declared once: its validation (zod), what it does to an image (whether it
 * reaches the workers in an image's options), its command-line flags and its row in the README's
 * config reference. The config schema, the image options, the CLI flags, the MASKFLEET_ variables
 * and the README table are all made from this table (scripts/config-table.ts writes the README block
 * and src/cli/env-names.ts; test/config-table.test.ts fails when anything drifts from it).
 *
 * The order is the order of `--help`; keys without a flag sit beside their neighbours.
 */
import { z } from "zod";
import { GENERATOR_NAMES, generatorHelp } from "../generators/registry.js";

/** Who reads a flag: every process (`process`), or the jobs a producer enqueues (`job`): workers ignore those. */
export type FlagScope = "process" | "job";

export interface ConfigFlag {
  /** commander's flags: `-t, --target <target>`. */
  spec: string;
  help: string;
  scope: FlagScope;
  /** Worker help text where a worker reads it differently (the model it warms up). */
  worker?: string;
}

/**
 * What a key does to an image, decided for every key so that a new one cannot miss the workers
 * unnoticed. "output": it changes what an image's outputs hold, so it is copied into the image's
 * options and hashed into its id. "gate": it only decides whether an image goes on (copied, never
 * hashed: a new bar reuses every output; see imageIdOf). "process": never in an image's options,
 * the process reads it (`out` travels beside them, and imageIdOf hashes it on its own).
 */
export type KeyEffect = "output" | "gate" | "process";

export interface ConfigKeyRow {
  /** Absent for a generator's own key: its backend declares the schema (src/generators/registry.ts). */
  schema?: z.ZodType;
  effect: KeyEffect;
  /** The image options' validator where it differs from the config's (the default unwrapped). */
  job?: z.ZodType;
  flags?: readonly ConfigFlag[];
  /** Its MASKFLEET_ variable, where that is not MASKFLEET_<KEY>. */
  env?: string;
  /** The README row: meaning, and the default or flag column where the schema does not say it. */
  doc: { meaning: string; default?: string; flag?: string };
}

/** The text detector `--target <label>` uses unless textDetectorModel names another. */
export const DEFAULT_TEXT_DETECTOR_MODEL = "owlv2-base-patch16-ensemble";

const seedRangeSchema = z
  .object({ from: z.number().int().min(0).max(4_294_967_294), to: z.number().int().min(0).max(4_294_967_294) })
  .refine((r) => r.from <= r.to, { message: "seed range start must not exceed its end" });

/** `-c, --config`: the YAML file the other keys come from; no key of its own. */
export const configFileFlag: ConfigFlag = {
  spec: "-c, --config <file>",
  help: "YAML config (the old script's keys load unchanged; default: ./maskfleet.yaml if there is one)",
  scope: "process",
};

export const configTable = {
  /** Output folder (or s3:// prefix in the AWS issue); jobs carry it beside their options (imageIdOf hashes it on its own). */
  out: {
    schema: z.string().min(1).default("./out"),
    effect: "process",
    flags: [{ spec: "-o, --out <dir>", help: "output folder", scope: "job", worker: "an s3:// output: AWS credentials are checked at start (jobs carry their own output)" }],
    doc: { meaning: "output folder or `s3://bucket/prefix/`" },
  },
  /** What to mask: "face", "auto" (the main object), "boxes" (given per image in a manifest), or a label like "Car". */
  target: {
    schema: z.string().min(1).default("face"),
    effect: "output",
    flags: [{ spec: "-t, --target <target>", help: 'face | auto | boxes | a label (e.g. "Car")', scope: "job" }],
    doc: { meaning: "`face`, `auto`, `boxes`, or a label" },
  },
  /** Where boxes come from: local ONNX models, or Amazon Rekognition (AWS issue). */
  detector: {
    schema: z.enum(["local", "rekognition"]).default("local"),
    effect: "output",
    flags: [
      { spec: "--detector <name>", help: "where boxes come from", scope: "job", worker: "detect: rekognition has its AWS credentials checked at start (jobs carry their own)" },
    ],
    doc: { meaning: "`local` (ONNX models) or `rekognition`" },
  },
  /** Face detector: a manifest name or a local .onnx file / model folder. */
  detectorModel: {
    schema: z.string().min(1).default("ultraface-rfb-320"),
    effect: "output",
    flags: [{ spec: "--detector-model <spec>", help: "face detector: manifest name or local .onnx / folder", scope: "job" }],
    doc: { meaning: "manifest name or local `.onnx`/folder" },
  },
  /** Minimum detector confidence, 0-1. */
  minConfidence: {
    schema: z.number().min(0).max(1).default(0.7),
    effect: "output",
    flags: [{ spec: "--min-confidence <n>", help: "detector threshold", scope: "job" }],
    doc: { meaning: "detector threshold, 0-1" },
  },
  /** Keep at most this many boxes per image (highest scores first). */
  maxObjects: {
    schema: z.number().int().min(1).max(64).default(16),
    effect: "output",
    doc: { meaning: "boxes kept per image, best first" },
  },
  /** Label targets ("Car") with detector local: a text-prompted model (format "owlv2"); unset = DEFAULT_TEXT_DETECTOR_MODEL. */
  textDetectorModel: {
    schema: z.string().min(1).optional(),
    effect: "output",
    flags: [{ spec: "--text-detector-model <spec>", help: `label targets with --detector local: text-prompted detector (default ${DEFAULT_TEXT_DETECTOR_MODEL})`, scope: "job" }],
    doc: { default: `\`${DEFAULT_TEXT_DETECTOR_MODEL}\``, meaning: "label targets with the local detector: manifest name or local folder" },
  },
  /** Score threshold 0-1 of the text-prompted detector (OWLv2 scores run lower than a face detector's); unset = 0.2. */
  textMinConfidence: {
    schema: z.number().min(0).max(1).optional(),
    effect: "output",
    flags: [{ spec: "--text-min-confidence <n>", help: "text-prompted detector threshold (default 0.2)", scope: "job" }],
    doc: { default: "0.2", meaning: "its threshold (OWLv2 scores run low)" },
  },
  /** Segment Anything model: a manifest name or a local model folder. */
  samModel: {
    schema: z.string().min(1).default("sam-vit-b"),
    effect: "output",
    flags: [
      {
        spec: "--sam-model <spec>",
        help: "segmenter: manifest name (sam-vit-b default, sam2.1-hiera-*, sam-vit-l/h, slimsam-77-uniform; see `maskfleet models list`) or local folder",
        scope: "job",
        worker: "mask: the segmenter warmed up before the first job (jobs name their own)",
      },
    ],
    doc: { meaning: "manifest name or local model folder" },
  },
  /** A second SAM pass that feeds the first mask back as mask_input (samexporter and sam2 formats). */
  refineMask: {
    schema: z.boolean().optional(),
    effect: "output",
    flags: [
      {
        spec: "--refine-mask",
        help: "a second SAM pass that feeds the first mask back (samexporter, sam2 models)",
        scope: "job",
        worker: "mask: warm the segmenter up with the refinement pass (jobs say whether they refine)",
      },
    ],
    doc: { default: "false", meaning: "a second SAM pass that feeds the first mask back (samexporter, sam2)" },
  },
  /**
   * Which of SAM's masks a prompt gets: "single" = mask 0, as SamPredictor.predict(multimask_output=False)
   * (the old script); "best" = the multimask candidate with the highest predicted IoU. Unset: single
   * where the decoder returns all its masks, else best (src/models/EXPORT.md says which formats can).
   */
  maskSelection: {
    schema: z.enum(["single", "best"]).optional(),
    effect: "output",
    flags: [
      {
        spec: "--mask-selection <rule>",
        help: "which SAM mask a box gets: single (mask 0, as the old script) | best (highest predicted IoU); default single where the model returns all masks",
        scope: "job",
        worker: "mask: warm the segmenter up for this rule (jobs carry their own)",
      },
    ],
    doc: {
      default: "`single` where the model returns all masks, else `best`",
      meaning:
        "`single`: SAM's mask 0, as the old script's `predict(multimask_output=False)`; `best`: the candidate with the highest predicted IoU ([src/models/EXPORT.md](src/models/EXPORT.md))",
    },
  },
  /** Images whose mask quality (0-1, mask.json's quality.score) is below this go to review instead of generation; unset = no bar. */
  minMaskQuality: {
    schema: z.number().min(0).max(1).optional(),
    effect: "gate",
    flags: [{ spec: "--min-mask-quality <n>", help: "send images whose mask quality is below this to review instead of generation", scope: "job" }],
    doc: { meaning: "images whose mask quality (0-1) is below this wait in `review` instead of being generated" },
  },
  /** Estimate the object's own colour in the soft edge (multi-level foreground estimation) for cutout.png and composites. */
  estimateForeground: {
    schema: z.boolean().default(true),
    effect: "output",
    flags: [{ spec: "--no-estimate-foreground", help: "keep the photo's own colours in the soft edge of cutouts and composites (no foreground estimation)", scope: "job" }],
    doc: { meaning: "estimate the object's own colour in the soft edge for `cutout.png` and composites, so the old background does not bleed in" },
  },
  /** target auto: a salient-object model (format "salient", e.g. birefnet-general) for a soft mask; unset = SAM prompted with the whole image. */
  salientModel: {
    schema: z.string().min(1).optional(),
    effect: "output",
    flags: [
      {
        spec: "--salient-model <spec>",
        help: "target auto: salient-object model for a soft mask (manifest name or local .onnx / folder)",
        scope: "job",
        worker: "mask: the salient-object model warmed up before the first job (jobs name their own)",
      },
    ],
    doc: { meaning: "target `auto`: a salient-object model for a soft mask" },
  },
  /** With salientModel: refine with SAM prompted by the salient mask's box (unset = true). */
  salientRefine: {
    schema: z.boolean().optional(),
    effect: "output",
    doc: { default: "true", meaning: "with salientModel: refine with SAM prompted by the salient box" },
  },
  executionProvider: {
    schema: z.enum(["cpu", "cuda"]).default("cpu"),
    effect: "process",
    flags: [{ spec: "--ep <provider>", help: "execution provider", scope: "process" }],
    doc: { meaning: "`cpu` or `cuda` (no silent fallback)" },
  },
  /** onnxruntime intra-op threads per session; 0 = the cores this process may use / concurrency.mask, at least 1. */
  threads: {
    schema: z.number().int().min(0).max(256).default(0),
    effect: "process",
    flags: [{ spec: "--threads <n>", help: "onnxruntime threads per session (0 = default: cores / mask concurrency, at least 1)", scope: "process" }],
    doc: { meaning: "onnxruntime intra-op threads per session (0 = the cores divided by the mask pool's concurrency, at least 1)" },
  },
  /** Model download cache. */
  cacheDir: {
    schema: z.string().min(1).optional(),
    effect: "process",
    flags: [{ spec: "--cache <dir>", help: "model cache folder (default ~/.cache/maskfleet/models)", scope: "process" }],
    env: "MASKFLEET_CACHE", // as its flag: one variable for the model cache
    doc: { default: "`~/.cache/maskfleet/models`", meaning: "model cache (`MASKFLEET_CACHE`)" },
  },
  /** Generator for each (prompt, seed): a backend of src/generators/registry.ts (composite, stability, titan, nova). */
  generator: {
    schema: z.enum(GENERATOR_NAMES).default("composite"),
    effect: "output",
    flags: [
      { spec: "--generator <name>", help: generatorHelp(), scope: "job", worker: "generate: the generator whose Bedrock models are checked at start (jobs carry their own)" },
    ],
    doc: { meaning: "`composite` (local), `stability` (Bedrock), or `titan`, `nova` (end of life on Bedrock; accounts with access)" },
  },
  /** outpaint keeps the object and replaces the rest; inpaint replaces the object. */
  mode: {
    schema: z.enum(["outpaint", "inpaint"]).default("outpaint"),
    effect: "output",
    flags: [{ spec: "--mode <mode>", help: "outpaint (new background) | inpaint (new object)", scope: "job" }],
    doc: { meaning: "`outpaint` keeps the object, `inpaint` replaces it" },
  },
  prompts: {
    schema: z.array(z.string().min(1).max(10_000)).min(1).max(1000).default(["studio white background"]),
    effect: "output",
    // A manifest row's own prompts replace the run's in its image's options: capped by maxResultsPerImage, not by the config's 1,000.
    job: z.array(z.string().min(1)).min(1),
    flags: [
      { spec: "-p, --prompts <prompt...>", help: "candidate prompts (environment: one per line, or comma-separated)", scope: "job" },
      { spec: "--prompts-file <file>", help: "candidate prompts, one per line", scope: "job" },
    ],
    doc: { meaning: "candidate prompts (at most 1,000)" },
  },
  /** Inclusive; unset = the generator's default (composite, Titan, Nova: 0-0; Stability: 1-1, as its 0 means random). */
  seeds: {
    schema: seedRangeSchema.optional(),
    effect: "output",
    // resolveConfig settles it (the generator's default), so every job has one.
    job: z.object({ from: z.number().int(), to: z.number().int() }),
    flags: [{ spec: "--seeds <range>", help: 'seed range, inclusive: "34-46" or "34,46"', scope: "job" }],
    doc: { default: "`0,0`; stability `1,1`", meaning: "inclusive range, `34,46` or `34-46` (stability: 1 and above)" },
  },
  /** Composite background: a colour ("#ffffff", "white"), "blur", or a path to an image. */
  background: {
    schema: z.string().min(1).default("#ffffff"),
    effect: "output",
    flags: [{ spec: "--background <value>", help: 'composite background: colour ("#ffffff"), "blur", or an image path', scope: "job" }],
    doc: { meaning: "composite background: colour, `blur`, or an image path" },
  },
  blurSigma: {
    schema: z.number().min(0.3).max(1000).default(25),
    effect: "output",
    doc: { meaning: "blur strength for `blur`" },
  },
  /** Mask clean-up before generation. */
  growPx: {
    schema: z.number().int().min(-256).max(256).default(0),
    effect: "output",
    flags: [{ spec: "--grow <px>", help: "grow (or, negative, shrink) the mask by N px", scope: "job" }],
    doc: { meaning: "grow (negative: shrink) the mask, px" },
  },
  featherPx: {
    schema: z.number().min(0).max(256).default(2),
    effect: "output",
    flags: [{ spec: "--feather <px>", help: "feather the mask edge by N px", scope: "job" }],
    doc: { meaning: "feathered edge for compositing, px" },
  },
  fillHoles: {
    schema: z.boolean().default(true),
    effect: "output",
    doc: { meaning: "fill holes inside the object (a soft mask's see-through holes stay open)" },
  },
  /** fillHoles fills holes up to this fraction of the object's area (a soft mask's see-through holes never). */
  maxHoleFraction: {
    schema: z.number().min(0).max(1).default(0.01),
    effect: "output",
    doc: { meaning: "largest hole filled, as a fraction of the object's area" },
  },
  minIslandArea: {
    schema: z.number().int().min(0).default(64),
    effect: "output",
    doc: { meaning: "drop object specks smaller than this, px (object pixels inside a soft region are never cut out)" },
  },
  /** Bedrock model id; default per generator (stability: Stable Image Inpaint, or the --edit's service). Alone, it also picks the generator. */
  modelId: {
    schema: z.string().min(1).optional(),
    effect: "output",
    // resolveConfig settles it per generator: "" where the generator calls no model (composite).
    job: z.string(),
    flags: [
      {
        spec: "--model <id>",
        help: "Bedrock model id (default per generator and edit, e.g. us.stability.stable-image-inpaint-v1:0; `maskfleet models cloud` lists them)",
        scope: "job",
        worker: "generate: the Bedrock model checked at start (jobs carry their own)",
      },
    ],
    doc: {
      default: "per generator",
      meaning:
        "stability: the `--edit`'s service (`us.stability.stable-image-inpaint-v1:0`, ...); titan: `amazon.titan-image-generator-v2:0`; nova: `amazon.nova-canvas-v1:0`; a model id alone picks its generator",
    },
  },
  /** The keys only one generator reads: their schemas are its backend's (src/generators/stability.ts). */
  edit: {
    effect: "output",
    flags: [
      {
        spec: "--edit <edit>",
        help: "stability: inpaint (a mask) | search-replace | erase | extend (Stable Outpaint only)",
        scope: "job",
        worker: "generate: the Stability edit whose model is checked at start (jobs carry their own)",
      },
    ],
    doc: { default: "`inpaint`", meaning: "stability: `inpaint`, `search-replace`, `erase`, `extend`" },
  },
  searchPrompt: {
    effect: "output",
    flags: [{ spec: "--search-prompt <text>", help: "stability --edit search-replace: what to find and replace, e.g. background", scope: "job" }],
    doc: { meaning: "stability `search-replace`: what to find and replace" },
  },
  stylePreset: {
    effect: "output",
    flags: [{ spec: "--style-preset <name>", help: "stability: a style preset", scope: "job" }],
    doc: { meaning: "stability: `photographic`, `cinematic`, ..." },
  },
  growMask: {
    effect: "output",
    flags: [{ spec: "--grow-mask <px>", help: "stability: the service's own grow_mask (default 0; --grow is maskfleet's)", scope: "job" }],
    doc: { default: "0", meaning: "stability's own `grow_mask`, 0-20" },
  },
  extend: {
    effect: "output",
    flags: [
      {
        spec: "--extend <l,r,u,d|square>",
        help: "stability: extend the canvas first with Stable Outpaint, pixels per side or square",
        scope: "job",
        worker: "generate: with Stable Outpaint checked at start too (jobs carry their own)",
      },
    ],
    doc: { meaning: "stability: extend the canvas first, `left,right,up,down` px or `square`" },
  },
  creativity: {
    effect: "output",
    flags: [{ spec: "--creativity <n>", help: "stability --extend: Stable Outpaint's creativity", scope: "job" }],
    doc: { meaning: "stability `--extend`: 0.1-1" },
  },
  negativePrompt: {
    schema: z.string().max(10_000).optional(),
    effect: "output",
    flags: [{ spec: "--negative-prompt <text>", help: "what the generator should avoid", scope: "job" }],
    doc: { meaning: "what the generator should avoid" },
  },
  /** Bedrock only: describe the region in words (maskPrompt) instead of sending the SAM mask. */
  maskPrompt: {
    schema: z.string().min(1).max(1024).optional(),
    effect: "output",
    flags: [{ spec: "--mask-prompt <text>", help: "Bedrock: describe the region in words instead of sending the SAM mask", scope: "job" }],
    doc: { meaning: "Titan/Nova: describe the region instead of sending the mask" },
  },
  /** Bedrock image quality and OUTPAINTING's outPaintingMode. */
  quality: {
    schema: z.enum(["standard", "premium"]).default("standard"),
    effect: "output",
    flags: [{ spec: "--quality <q>", help: "Bedrock image quality", scope: "job" }],
    doc: { meaning: "Titan/Nova `standard` or `premium`" },
  },
  outpaintingMode: {
    schema: z.enum(["DEFAULT", "PRECISE"]).default("DEFAULT"),
    effect: "output",
    flags: [{ spec: "--outpainting-mode <m>", help: "Bedrock outpainting mode", scope: "job" }],
    doc: { meaning: "Titan/Nova `DEFAULT` or `PRECISE`" },
  },
  /** Bedrock settings kept from the old script. */
  cfgScale: {
    schema: z.number().min(1.1).max(10).default(8),
    effect: "output",
    flags: [{ spec: "--cfg-scale <n>", help: "Bedrock: prompt adherence", scope: "job" }],
    doc: { meaning: "Titan/Nova prompt adherence, 1.1-10" },
  },
  width: {
    schema: z.number().int().min(64).max(4096).optional(),
    effect: "output",
    doc: { meaning: "kept from the old YAML, not used" },
  },
  height: {
    schema: z.number().int().min(64).max(4096).optional(),
    effect: "output",
    doc: { meaning: "kept from the old YAML, not used" },
  },
  resize: {
    schema: z.boolean().default(false),
    effect: "output",
    doc: { meaning: "kept from the old YAML, not used" },
  },
  /**
   * Generator requests per time window for the whole fleet (e.g. "60/min"); unset = an adaptive
   * rate the fleet finds itself (cloud generators); "unlimited" = no limiter, throttles only.
   */
  rate: {
    schema: z.union([z.literal("unlimited"), z.strictObject({ max: z.number().int().min(1), durationMs: z.number().int().min(1) })]).optional(),
    effect: "process",
    flags: [
      {
        spec: "--rate <rate>",
        help: 'generator requests for the whole fleet, e.g. "60/min" or "2/s" (default: an adaptive rate the fleet finds; "unlimited": none)',
        scope: "process",
      },
    ],
    doc: { default: "adaptive", meaning: "generator requests for the whole fleet: `60/min`, `2/s`, `19/4s`; unset: found by the fleet; `unlimited`" },
  },
  /** Queue pause after a throttle when the service names no wait (with a rate: one limiter slot, if shorter); doubles per throttle with no success between, up to 16x. */
  throttleBackoffMs: {
    schema: z.number().int().min(10).max(600_000).default(2000),
    effect: "process",
    doc: { meaning: "pause after a throttle that names no wait" },
  },
  /** Per-request timeout of generator calls (Nova Canvas can take minutes). */
  requestTimeoutMs: {
    schema: z.number().int().min(1000).max(3_600_000).default(300_000),
    effect: "process",
    doc: { meaning: "per generator request" },
  },
  /** AWS: region, named profile, endpoint overrides (S3-compatible stores, local stand-ins). */
  region: {
    schema: z.string().min(1).optional(), // unset: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, us-east-1 (resolveRegion)
    effect: "process",
    flags: [{ spec: "--region <region>", help: "AWS region", scope: "process" }],
    doc: { default: "as the SDK", meaning: "AWS region: `--region`, else the config file, else `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's region, and `us-east-1` last" },
  },
  awsProfile: {
    schema: z.string().min(1).optional(),
    effect: "process",
    flags: [{ spec: "--profile <name>", help: "AWS profile", scope: "process" }],
    doc: { default: "as the SDK", meaning: "AWS profile" },
  },
  s3Endpoint: {
    schema: z.url().optional(),
    effect: "process",
    flags: [{ spec: "--s3-endpoint <url>", help: "S3-compatible endpoint", scope: "process" }],
    doc: { meaning: "S3-compatible endpoint override" },
  },
  bedrockEndpoint: {
    schema: z.url().optional(),
    effect: "process",
    flags: [{ spec: "--bedrock-endpoint <url>", help: "Bedrock Runtime endpoint override", scope: "process" }],
    doc: { meaning: "Bedrock Runtime endpoint override" },
  },
  rekognitionEndpoint: {
    schema: z.url().optional(),
    effect: "process",
    flags: [{ spec: "--rekognition-endpoint <url>", help: "Rekognition endpoint override", scope: "process" }],
    doc: { meaning: "Rekognition endpoint override" },
  },
  redisUrl: {
    schema: z.string().min(1).default("redis://127.0.0.1:6379"),
    effect: "process",
    flags: [{ spec: "--redis <url>", help: "Redis URL (default redis://127.0.0.1:6379; also MASKFLEET_REDIS_URL)", scope: "process" }],
    doc: { meaning: "Redis (a `/N` suffix picks the database; `redis://:PASSWORD@host:port`, `rediss://` for TLS); its `maxmemory-policy` must be `noeviction`" },
  },
  /** CA bundle (PEM file) for a rediss:// redisUrl. */
  redisCa: {
    schema: z.string().min(1).optional(),
    effect: "process",
    flags: [{ spec: "--redis-ca <file>", help: "CA bundle (PEM) for a rediss:// Redis", scope: "process" }],
    doc: { meaning: "CA bundle (PEM file) for a `rediss://` Redis (`MASKFLEET_REDIS_CA` for `status`, `report`, `retry`, `clean`)" },
  },
  /** Most results (prompts x seeds, a manifest row's own prompts too) per image: one image's flow of generate jobs stays small. Not an image option. */
  maxResultsPerImage: {
    schema: z.number().int().min(1).max(1_000_000).default(1000),
    effect: "process",
    flags: [{ spec: "--max-results-per-image <n>", help: "most prompts x seeds per image (default 1000)", scope: "job" }],
    doc: { meaning: "most prompts x seeds per image (a manifest row's own prompts too); more is refused before any work" },
  },
  /** Largest image accepted, in pixels (decompression-bomb guard). */
  maxPixels: {
    schema: z.number().int().min(1).default(100_000_000),
    effect: "output",
    doc: { meaning: "largest image accepted (decompression-bomb guard)" },
  },
  /** Attempts per job for transient errors (bad input never retries). */
  attempts: {
    schema: z.number().int().min(1).max(100).default(3),
    effect: "process",
    flags: [{ spec: "--attempts <n>", help: "attempts per job for transient errors", scope: "process" }],
    doc: { meaning: "attempts per job for transient errors (bad input never retries)" },
  },
  /** A job whose worker stops renewing its lock (killed) is handed to another worker after this long. */
  lockDurationMs: {
    schema: z.number().int().min(1000).max(600_000).default(30_000),
    effect: "process",
    doc: { meaning: "a killed worker's jobs go to another after this long" },
  },
  /** On SIGTERM/SIGINT: in-flight jobs get this long to finish, then they are handed back to the queue. */
  shutdownGraceMs: {
    schema: z.number().int().min(0).max(3_600_000).default(30_000),
    effect: "process",
    doc: { meaning: "on SIGTERM/SIGINT, in-flight jobs get this long, then go back to the queue" },
  },
  /** Prometheus metrics at GET /metrics. Unset: 9464, or any free port when 9464 is taken; 0: any free port; a port given and taken is an error. */
  metricsPort: {
    schema: z.number().int().min(0).max(65535).optional(),
    effect: "process",
    flags: [{ spec: "--metrics-port <n>", help: "Prometheus metrics port (0 = any free port; default 9464, or any free one when taken)", scope: "process" }],
    doc: { default: "9464", meaning: "Prometheus endpoint (see Metrics); `0` = any free port" },
  },
  metricsHost: {
    schema: z.string().min(1).default("0.0.0.0"),
    effect: "process",
    flags: [{ spec: "--metrics-host <host>", help: "address the metrics endpoint listens on (default 0.0.0.0, all interfaces; 127.0.0.1: this host only)", scope: "process" }],
    doc: { meaning: "address the metrics endpoint listens on (`0.0.0.0`/`::`: all interfaces; `127.0.0.1`: this host only)" },
  },
  /** Jobs at once per pool; `run --concurrency` and `worker --concurrency` (src/cli/program.ts) override it for one process. */
  concurrency: {
    schema: z
      .strictObject({
        detect: z.number().int().min(1).max(256).default(2),
        mask: z.number().int().min(1).max(64).default(1),
        generate: z.number().int().min(1).max(256).default(4),
        finalize: z.number().int().min(1).max(256).default(2),
      })
      .default({ detect: 2, mask: 1, generate: 4, finalize: 2 }),
    effect: "process",
    doc: { flag: "`--concurrency` (worker)", default: "2, 1, 4, 2", meaning: "jobs at once per pool: `concurrency.detect`, `.mask`, `.generate`, `.finalize`" },
  },
} as const satisfies Record<string, ConfigKeyRow>;

type Table = typeof configTable;
export type ConfigKey = keyof Table;
type Unwrapped<S> = S extends z.ZodDefault<infer Inner> ? Inner : S;

/** The keys this table validates itself (not a generator's), with their schemas: the config schema's own part. */
export type TableShape = { -readonly [K in ConfigKey as Table[K] extends { schema: z.ZodType } ? K : never]: Table[K] extends { schema: infer S } ? S : never };

/** The image options the table declares (a generator's own keys join them in image-options.ts). */
export type TableImageShape = {
  -readonly [K in ConfigKey as Table[K] extends { effect: "output" | "gate"; schema: z.ZodType } ? K : never]: Table[K] extends { job: infer J }
    ? J
    : Table[K] extends { schema: infer S }
      ? Unwrapped<S>
      : never;
};

const rows = Object.entries(configTable) as [ConfigKey, ConfigKeyRow][];

export const tableShape = Object.fromEntries(rows.flatMap(([key, row]) => (row.schema ? [[key, row.schema]] : []))) as TableShape;

/** A job carries the config's validated value: the config's validator without its default (a job lacking the key is refused, as it always was). */
export const tableImageShape = Object.fromEntries(
  rows.flatMap(([key, row]) => (row.effect !== "process" && row.schema ? [[key, row.job ?? (row.schema instanceof z.ZodDefault ? row.schema.unwrap() : row.schema)]] : [])),
) as TableImageShape;

/** Every key that reaches the workers in an image's options, a generator's own included. */
export const imageKeys: readonly string[] = rows.filter(([, row]) => row.effect !== "process").map(([key]) => key);

/** The variable of a config key: samModel -> MASKFLEET_SAM_MODEL; a row may name its own (cacheDir: MASKFLEET_CACHE, as `--cache`). */
export function envNameOfKey(key: string): string {
  return (configTable as Record<string, ConfigKeyRow>)[key]?.env ?? `MASKFLEET_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}
