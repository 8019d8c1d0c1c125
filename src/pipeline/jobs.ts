/**
 * Job payloads (validated when enqueued and when picked up) and deterministic ids. Jobs carry
 * references (paths, store keys), never image bytes. An image's id is a hash of its content and
 * of every option that changes its outputs, so enqueueing it again is a no-op.
 */
import { z } from "zod";
import type { ImageOptions } from "../config/image-options.js";
import { fillPrompt, type PromptVars } from "./prompts.js";
import { sha256Hex, stableJson } from "./hash.js";
import { imageOptionsSchema } from "../config/image-options.js";
import type { Stage } from "./stages.js";

export const boxSchema = z.object({
  x0: z.number(),
  y0: z.number(),
  x1: z.number(),
  y1: z.number(),
  score: z.number().optional(),
  label: z.string().optional(),
  points: z.array(z.object({ x: z.number(), y: z.number(), label: z.union([z.literal(0), z.literal(1)]) })).optional(),
});

/**
 * The image a detect, mask or finalize job is about, as queued: a reference to the run, whose
 * options and output are stored once (src/runs/run-state.ts), never copied into every job. Parsing
 * any of those jobs with it keeps the image and drops what the job's kind adds.
 */
export const queuedImageSchema = z.object({
  runId: z.string().min(1),
  /** The run's option set and output this image was enqueued with (src/runs/run-state.ts). */
  settings: z.string().regex(/^[0-9a-f]{12}$/),
  imageId: z.string().regex(/^[0-9a-f]{16,64}$/),
  /** Absolute path (or URI) of the input image. */
  input: z.string().min(1),
  /** The name shown to people: the path relative to what was enqueued. */
  name: z.string().min(1),
  /** Boxes given by the user (target "boxes"). */
  boxes: z.array(boxSchema).optional(),
  /** A manifest row's own prompts, in place of the run's. */
  prompts: z.array(z.string().min(1)).min(1).optional(),
  /** Set by `retry` for an image held for review: its mask was looked at, so no quality bar holds it again. */
  reviewed: z.literal(true).optional(),
});
export type QueuedImage = z.infer<typeof queuedImageSchema>;

export const promptVarsSchema = z.object({ label: z.string(), color: z.string() });

/** What a finalize job says of its image: the image, and the prompt variables its mask gave (its generate jobs read both from here). */
export const queuedFinalizeSchema = queuedImageSchema.extend({ promptVars: promptVarsSchema });
export type QueuedFinalize = z.infer<typeof queuedFinalizeSchema>;

/**
 * The jobs, one kind per stage. Each payload names its kind, the stage whose queue it is on, so a
 * payload seen anywhere (the queue browser, a flow's children, a log) says what it is.
 */
export const detectJobSchema = queuedImageSchema.extend({ kind: z.literal("detect") });

/**
 * A mask job: its image and the boxes detect found (kept, clamped, best first), so mask reads no
 * detections.json for them. A mask job `retry` queues from a failure record, or one queued by a
 * version before the boxes rode in the job, has none: mask then reads detections.json.
 */
export const maskJobSchema = queuedImageSchema.extend({ kind: z.literal("mask"), detected: z.array(boxSchema).optional() });

export const finalizeJobSchema = queuedFinalizeSchema.extend({ kind: z.literal("finalize") });

/**
 * A generate job: a reference to its image and one prompt x seed. The image (options, prompts,
 * paths) is stored once, in the job's finalize parent, never copied into each of its prompt x
 * seed children.
 */
export const generateJobDataSchema = z.object({
  kind: z.literal("generate"),
  runId: z.string().min(1),
  imageId: z.string().regex(/^[0-9a-f]{16,64}$/),
  promptIndex: z.number().int().min(0),
  seed: z.number().int().min(0),
});
export type GenerateJobData = z.infer<typeof generateJobDataSchema>;

/** Any job of the pipeline, told apart by its kind. */
export const jobDataSchema = z.discriminatedUnion("kind", [detectJobSchema, maskJobSchema, generateJobDataSchema, finalizeJobSchema]);
export type JobData = z.infer<typeof jobDataSchema>;

/** Each stage's job data (a job's kind is its stage). */
export type StageJob = { [S in Stage]: Extract<JobData, { kind: S }> };
export type DataOf<S extends Stage> = StageJob[S];

// Every stage has a job kind and every kind is a stage: a compile error otherwise.
const _kindsAreStages: [JobData["kind"], Stage] extends [Stage, JobData["kind"]] ? true : never = true;

const isJobOf = <S extends Stage>(stage: S, job: JobData): job is DataOf<S> => job.kind === stage;

/** The image stages in their order: an earlier version of each handed its own payload on to the next. */
const imageStages: readonly Stage[] = ["detect", "mask", "finalize"];

/**
 * Payloads from a version before this one (during a rolling update) are their queue's own: one
 * without a kind was queued before payloads named theirs, and one of an earlier image stage was
 * handed on as it was (an older detect passed its own data to mask, an older mask to finalize).
 */
const withKind = (stage: Stage, data: unknown): unknown => {
  if (typeof data !== "object" || data === null) return data;
  if (!("kind" in data)) return { ...data, kind: stage };
  const from = imageStages.indexOf(data.kind as Stage);
  return from >= 0 && from < imageStages.indexOf(stage) ? { ...data, kind: stage } : data;
};

/** A job's data as the stage of its queue reads it; a job of another kind is refused. */
export function parseJobData<S extends Stage>(stage: S, data: unknown): DataOf<S> {
  const job = jobDataSchema.parse(withKind(stage, data));
  if (!isJobOf(stage, job)) throw new Error(`a ${job.kind} job on the ${stage} queue`);
  return job;
}

/** parseJobData, or undefined for a payload that is no job of this stage. */
export function safeParseJobData<S extends Stage>(stage: S, data: unknown): DataOf<S> | undefined {
  const parsed = jobDataSchema.safeParse(withKind(stage, data));
  return parsed.success && isJobOf(stage, parsed.data) ? parsed.data : undefined;
}

/** An image's job resolved against its run: the options and output a stage works with. */
export const imageJobSchema = queuedImageSchema.omit({ prompts: true, settings: true }).extend({
  /** Output root and this image's key prefix under it. */
  out: z.string().min(1),
  outPrefix: z.string().min(1),
  options: imageOptionsSchema,
});
export type ImageJob = z.infer<typeof imageJobSchema>;

/** The image job a queued one stands for, given its run's options and output. */
export function resolveImageJob(queued: QueuedImage, run: { options: ImageOptions; out: string }): ImageJob {
  const { prompts, settings: _, ...rest } = queued;
  return { ...rest, out: run.out, outPrefix: outPrefixOf(queued.name, queued.imageId), options: prompts ? { ...run.options, prompts } : run.options };
}

/** What is queued for an image job: the run holds the rest, under `settings` (its options, whose prompts a manifest row may replace). */
export function queuedImageOf(job: ImageJob, settings: string, runOptions: ImageOptions): QueuedImage {
  const own = stableJson(job.options.prompts) !== stableJson(runOptions.prompts);
  return {
    runId: job.runId,
    settings,
    imageId: job.imageId,
    input: job.input,
    name: job.name,
    ...(job.boxes && { boxes: job.boxes }),
    ...(own && { prompts: job.options.prompts }),
  };
}

/** One prompt x seed of an image, resolved: the image, the filled prompt and the result's store key. */
export interface GenerateJob {
  image: ImageJob;
  promptIndex: number;
  prompt: string;
  seed: number;
  /** Store key of the result, deterministic in (image, prompt, seed, generator options). */
  resultKey: string;
}

/** Whether an image's mask comes from the salient model (target auto with salientModel set): a soft alpha. */
export function usesSalient(opts: { target: string; salientModel?: string | undefined }): boolean {
  return opts.target === "auto" && opts.salientModel !== undefined && opts.salientModel !== "";
}

/**
 * Image id: content hash + output root + options + given boxes. minMaskQuality is left out: it
 * decides whether an image goes on, not what any output holds, so a new bar reuses every output.
 */
export function imageIdOf(content: Buffer, out: string, options: ImageOptions, boxes?: unknown): string {
  const { minMaskQuality: _, ...outputOptions } = options;
  return sha256Hex(sha256Hex(content), "\0", out, "\0", stableJson({ options: outputOptions, boxes })).slice(0, 24);
}

/** Output key prefix: a readable stem plus the id, so names never collide and never change. */
export function outPrefixOf(name: string, imageId: string): string {
  const stem = name
    .replace(/\.[^./\\]+$/, "")
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(-60);
  return `${stem || "image"}-${imageId.slice(0, 10)}`;
}

/**
 * Every (prompt, seed) of an image, in a fixed order; prompt templates filled with `vars` when
 * given. Result keys depend on the templates, not the filled text, so they are known at enqueue.
 */
export function generateJobsOf(image: ImageJob, vars?: PromptVars): GenerateJob[] {
  const { prompts, seeds } = image.options;
  const jobs: GenerateJob[] = [];
  prompts.forEach((_, promptIndex) => {
    for (let seed = seeds.from; seed <= seeds.to; seed++) jobs.push(generateJobOf(image, promptIndex, seed, vars));
  });
  return jobs;
}

/** One prompt x seed of an image (see generateJobsOf); the prompt index must be the image's. */
export function generateJobOf(image: ImageJob, promptIndex: number, seed: number, vars?: PromptVars): GenerateJob {
  const template = image.options.prompts[promptIndex];
  if (template === undefined) throw new Error(`${image.name}: no prompt ${promptIndex} (the image has ${image.options.prompts.length})`);
  const prompt = vars ? fillPrompt(template, vars) : template;
  const tag = sha256Hex(stableJson({ prompt: template, seed, o: image.options })).slice(0, 8);
  return { image, promptIndex, prompt, seed, resultKey: `${image.outPrefix}/results/p${promptIndex}-s${seed}-${tag}.png` };
}

/** What a generate job carries: its image's id and run, and its prompt x seed. */
export function generateJobData(g: GenerateJob): GenerateJobData {
  return { kind: "generate", runId: g.image.runId, imageId: g.image.imageId, promptIndex: g.promptIndex, seed: g.seed };
}

/** BullMQ job id of one (prompt, seed) of an image: its image's job id (run-state.ts jobIdOf) and the pair (BullMQ ids may not contain ':'). */
export function generateJobId(imageJobId: string, g: { promptIndex: number; seed: number }): string {
  return `${imageJobId}-p${g.promptIndex}-s${g.seed}`;
}

const seedCountOf = (options: Pick<ImageOptions, "seeds">) => options.seeds.to - options.seeds.from + 1;

/** How many results (prompts x seeds) an image has: generateJobsOf's length, without making them. */
export function resultCountOf(options: Pick<ImageOptions, "seeds" | "prompts">): number {
  return options.prompts.length * seedCountOf(options);
}

/** The index of a prompt x seed among an image's results (generateJobsOf's order). */
export function resultIndexOf(options: Pick<ImageOptions, "seeds">, g: { promptIndex: number; seed: number }): number {
  return g.promptIndex * seedCountOf(options) + (g.seed - options.seeds.from);
}

/** The store keys one image's stages write. */
export function outputKeys(outPrefix: string) {
  return {
    detections: `${outPrefix}/detections.json`,
    mask: `${outPrefix}/mask.png`,
    bedrockMask: `${outPrefix}/mask-bedrock.png`,
    cutout: `${outPrefix}/cutout.png`,
    maskInfo: `${outPrefix}/mask.json`,
    manifest: `${outPrefix}/manifest.json`,
    contactSheet: `${outPrefix}/contact-sheet.jpg`,
  };
}
