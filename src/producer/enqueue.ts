/**
 * The producer: turns inputs into detect jobs with deterministic ids, grouped under a run id.
 * Enqueueing the same images with the same options again adds no job.
 */
import { createReadStream } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { AwsSettings } from "../runtime/aws.js";
import { awsSettingsOf, type Config } from "../config/config.js";
import { ConfigError } from "../runtime/errors.js";
import { imageIdOf, imageJobSchema, outPrefixOf, queuedImageOf, resultCountOf, usesSalient, type ImageJob } from "../pipeline/jobs.js";
import { pickImageOptions } from "../config/image-options.js";
import { jobOptions, keyPrefix, openQueue, type StageQueue } from "../pipeline/queues.js";
import { generatorBackend } from "../generators/registry.js";
import { isBedrockSalient } from "../generators/stability-remove-background.js";
import { assertStabilityRegion, familyOf, stabilityModelFor } from "../generators/bedrock-models.js";
import { checkBedrockModels } from "../generators/lifecycle.js";
import { checkPromptTemplate } from "../pipeline/prompts.js";
import { RunState, jobIdOf } from "../runs/run-state.js";
import { checkRunId } from "../pipeline/run-id.js";
import { checkResultsPerImage } from "../config/config.js";
import { isStoreUri, openStore, storeOf } from "../storage/index.js";
import { isS3Uri } from "../storage/s3.js";
import { modelSpecProblem, type Task } from "../models/registry.js";
import { DEFAULT_TEXT_DETECTOR_MODEL } from "../config/config.js";
import { formatSkipped, type FollowedLink, type InputItem, type SkippedInput } from "./discover.js";
import { streamInputs, type InputCursor, type StreamedInput } from "./input-stream.js";

export interface EnqueueSummary {
  runId: string;
  images: number;
  added: number;
  alreadyKnown: number;
}

/** Options that cannot work are refused before anything is enqueued. */
export async function checkRunnable(config: Config): Promise<void> {
  const { target, detector, generator } = config;
  // A label ("Car") with the local detector goes to the text-prompted model (textDetectorModel, OWLv2).
  if (detector === "rekognition" && ["auto", "boxes"].includes(target)) {
    throw new ConfigError("detector", `target "${target}" needs no detector service; use --detector local`);
  }
  await generatorBackend(generator).check(config);
  for (const p of config.prompts) checkPromptTemplate(p);
  const aws = awsSettingsOf(config);
  if (bedrockModelsOf(config).some((id) => familyOf(id) === "stability")) assertStabilityRegion(aws.region);
  openStore(config.out, aws);
}

/** Every Bedrock model a run with this config calls: the generator's, and Remove Background as the salient model. */
export function bedrockModelsOf(config: Config): string[] {
  const ids = generatorBackend(config.generator).bedrockModels(config);
  if (usesSalient(config) && isBedrockSalient(config.salientModel)) ids.push(stabilityModelFor("remove-background"));
  return [...new Set(ids)];
}

/**
 * The lifecycle gate, before any paid work: every Bedrock model this config calls must be
 * served in the region (a Legacy one warns with its end-of-life date). One line and a ConfigError
 * for a model that is gone or not enabled, naming the flag to use instead.
 */
export async function checkBedrockLifecycle(config: Config, warn: (line: string) => void): Promise<void> {
  const ids = bedrockModelsOf(config);
  if (ids.length === 0) return;
  await checkBedrockModels(ids, awsSettingsOf(config), { warn: (line) => warn(`maskfleet: ${line}`), insteadOf: insteadOfModel });
}

/** What to use instead of a Bedrock model that cannot be called. */
export function insteadOfModel(modelId: string): string {
  return familyOf(modelId) === "stability"
    ? "request access to Stability AI Image Services in the Bedrock console"
    : "use --generator stability (Stability AI Image Services; see the README's migration notes)";
}

/** The models this config's workers will load: config key, spec and the task it must be. */
export function modelSpecsOf(config: Config): { key: string; spec: string; task: Task }[] {
  const { target, detector } = config;
  const specs: { key: string; spec: string; task: Task }[] = [];
  if (detector === "local" && target === "face") specs.push({ key: "detectorModel", spec: config.detectorModel, task: "face-detect" });
  if (detector === "local" && !["face", "auto", "boxes"].includes(target)) {
    specs.push({ key: "textDetectorModel", spec: config.textDetectorModel ?? DEFAULT_TEXT_DETECTOR_MODEL, task: "detect" });
  }
  const salient = usesSalient(config);
  if (salient && !isBedrockSalient(config.salientModel)) specs.push({ key: "salientModel", spec: config.salientModel as string, task: "salient" });
  if (!salient || config.salientRefine !== false) specs.push({ key: "samModel", spec: config.samModel, task: "segment" });
  return specs;
}

/**
 * A model spec that names nothing here (a typo, a missing folder, a model of the wrong task):
 * `run`, whose workers are this process, refuses it before any work; `enqueue` only warns, since
 * the workers resolve local paths on their own hosts.
 */
export async function checkModels(config: Config, where: "here" | "workers", warn: (line: string) => void): Promise<void> {
  for (const { key, spec, task } of modelSpecsOf(config)) {
    const problem = await modelSpecProblem(spec, task);
    if (!problem) continue;
    if (where === "here") throw new ConfigError(key, problem);
    warn(`maskfleet: ${key}: ${problem} (the workers must have it on their hosts)`);
  }
}

/** Whether a run with these inputs and this config talks to AWS (and so needs credentials). */
export function needsAws(config: Config, inputs: readonly string[]): boolean {
  return config.detector === "rekognition" || bedrockModelsOf(config).length > 0 || isS3Uri(config.out) || inputs.some(isS3Uri);
}

/**
 * What identifies an input's content: the sha256 of a local file; for an object in a store its
 * content tag (S3: ETag and size, read with one HEAD request, so a catalog is not downloaded at
 * enqueue). An unreadable input still gets a stable id: the detect stage reports why it fails.
 */
export async function contentIdOf(input: string, aws: AwsSettings): Promise<Buffer> {
  try {
    if (isStoreUri(input)) {
      const { store, key } = storeOf(input, aws);
      const head = await store.head(key);
      if (!head) return Buffer.from(`unreadable:${input}:not found`);
      return head.contentTag !== undefined
        ? Buffer.from(head.contentTag)
        : createHash("sha256")
            .update(await store.read(key))
            .digest();
    }
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(input)) hash.update(chunk as Buffer);
    return hash.digest();
  } catch (err) {
    return Buffer.from(`unreadable:${input}:${(err as Error).message}`);
  }
}

export function newRunId(): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
  return `run-${stamp}-${Math.random().toString(36).slice(2, 6)}`;
}

/** What the producer adds at once: one round trip to register, one to add the jobs, one checkpoint. */
const batchSize = 256;
/** Files hashed at once while a batch's ids are computed. */
const hashConcurrency = 8;
/** How often a producer waiting for room in its window looks again. */
const windowPollMs = 200;

export interface EnqueueOptions {
  /** Images registered so far (this producer) and jobs added, after each batch. */
  onProgress?: (p: { images: number; added: number }) => void;
  /** The run's own queues (`maskfleet run`; recorded with the run so status, report and admin find them); default the shared ones. */
  queuePrefix?: string;
  /**
   * Most unfinished images of the run in Redis at once (default 10,000): the producer adds more as
   * images finish, so Redis holds a window of the catalog, never all of it.
   */
  window?: number;
  /** Called when the producer starts waiting for images to finish (the window is full). */
  onWindowFull?: (unfinished: number) => void;
}

/** An input and, from a stream of inputs, the cursor that resumes right after it. */
export interface SourcedInput {
  item: StreamedInput;
  cursor?: InputCursor;
}

/** Enqueues these inputs as a run (see enqueueSource); tests and callers that already hold a list. */
export async function enqueueImages(redis: Redis, config: Config, runId: string, items: Iterable<InputItem>, opts: EnqueueOptions = {}): Promise<EnqueueSummary> {
  async function* sourced(): AsyncGenerator<SourcedInput> {
    for (const item of items) yield { item };
  }
  return enqueueSource(redis, config, runId, sourced(), opts);
}

/**
 * Walks these input specs as a stream and enqueues them as a run, checkpointing the cursor after
 * every batch: a producer killed at any point and started again with the same run id and inputs
 * resumes after the last batch whose jobs are in (a replayed image is known to the run, so
 * nothing is added twice). No image at all is a ConfigError that says what was skipped.
 */
export async function enqueueInputs(
  redis: Redis,
  config: Config,
  runId: string,
  specs: readonly string[],
  opts: EnqueueOptions & { pageSize?: number; onSkipped?: (s: SkippedInput) => void; onFollowed?: (f: FollowedLink) => void } = {},
): Promise<EnqueueSummary> {
  const state = new RunState(redis);
  checkRunId(runId);
  const aws = awsSettingsOf(config);
  // The checkpoint belongs to this list of inputs into this output: other inputs start from their beginning.
  const inputsKey = JSON.stringify({ specs: specs.map((s) => (isStoreUri(s) ? s : resolve(s))), out: openStore(config.out, aws).root });
  const after = await state.checkpointOf(runId, inputsKey);
  const skipped: SkippedInput[] = [];
  const stream = streamInputs(specs, aws, {
    ...(after !== undefined && { after }),
    ...(opts.pageSize !== undefined && { pageSize: opts.pageSize }),
    onSkipped: (s) => {
      if (skipped.length < 1000) skipped.push(s);
      opts.onSkipped?.(s);
    },
    ...(opts.onFollowed && { onFollowed: opts.onFollowed }),
  });
  const summary = await enqueueSource(redis, config, runId, stream, { ...opts, checkpoint: (cursor) => state.checkpoint(runId, inputsKey, cursor) });
  if (summary.images === 0 && after === undefined) {
    const why = formatSkipped(skipped);
    throw new ConfigError("inputs", `no images found in ${specs.join(" ")}${why ? ` (${why})` : ""}`);
  }
  return summary;
}

/**
 * The producer's loop: inputs in batches, each batch's ids computed (a file's content hash; an S3
 * object's ETag and size from the listing), registered with the run, and its detect jobs added,
 * while at most `window` images of the run are unfinished; then the checkpoint. Memory stays one
 * batch, whatever the catalog's size.
 */
export async function enqueueSource(
  redis: Redis,
  config: Config,
  runId: string,
  source: AsyncIterable<SourcedInput>,
  opts: EnqueueOptions & { checkpoint?: (cursor: InputCursor) => Promise<void> } = {},
): Promise<EnqueueSummary> {
  const { queuePrefix = keyPrefix, window = 10_000 } = opts;
  checkRunId(runId);
  if (!Number.isInteger(window) || window < 1) throw new ConfigError("window", `expected a whole number >= 1, got ${window}`);
  await checkRunnable(config);
  const base = pickImageOptions(config);
  const state = new RunState(redis);
  const aws = awsSettingsOf(config);
  const out = openStore(config.out, aws).root;
  let run: { tag: string; settingsId: string } | undefined;
  let queue: StageQueue<"detect"> | undefined;
  const perBatch = Math.min(batchSize, window);
  let images = 0;
  let added = 0;
  let waiting = false;

  const jobOf = async ({ item }: SourcedInput): Promise<ImageJob> => {
    if (config.target === "boxes" && !item.boxes?.length) throw new ConfigError("target", `target "boxes" needs boxes for every image; ${item.name} has none`);
    if (item.prompts) {
      // A manifest row's own prompts: its fan-out is capped like the config's.
      checkResultsPerImage(item.prompts.length, config.seeds, config.maxResultsPerImage, `${item.name} prompts`);
      for (const p of item.prompts) checkPromptTemplate(p, `${item.name} prompts`);
    }
    const options = item.prompts ? { ...base, prompts: item.prompts } : base;
    const boxes = config.target === "boxes" ? item.boxes : undefined;
    const content = item.contentTag !== undefined ? Buffer.from(item.contentTag) : await contentIdOf(item.path, aws);
    const imageId = imageIdOf(content, out, options, boxes);
    return imageJobSchema.parse({ runId, imageId, input: item.path, name: item.name, out, outPrefix: outPrefixOf(item.name, imageId), options, boxes });
  };

  /** Waits until the run has room for `n` more unfinished images (or none is unfinished). */
  const roomFor = async (n: number) => {
    for (;;) {
      const { images: registered, finished } = await state.progress(runId);
      const unfinished = registered - finished;
      if (unfinished === 0 || unfinished + n <= window) {
        waiting = false;
        return;
      }
      if (!waiting) opts.onWindowFull?.(unfinished);
      waiting = true;
      await sleep(windowPollMs);
    }
  };

  const flush = async (batch: SourcedInput[]) => {
    if (batch.length === 0) return;
    // An image twice in one batch (the same file under two names) is one image, under its first name.
    const byId = new Map<string, ImageJob>();
    for (const j of await mapLimit(batch, hashConcurrency, jobOf)) if (!byId.has(j.imageId)) byId.set(j.imageId, j);
    const jobs = [...byId.values()];
    if (run === undefined) {
      // Written once the first batch is valid: inputs refused up front leave nothing in Redis.
      run = await state.create(runId, { options: base, out });
      queue = openQueue("detect", redis, queuePrefix);
      if (queuePrefix !== keyPrefix) await state.setQueuePrefix(runId, queuePrefix);
      await state.listingStarted(runId);
    }
    const { tag, settingsId } = run;
    const jobId = (j: ImageJob) => jobIdOf(tag, j.imageId);
    await roomFor(jobs.length);
    const registered = await state.register(
      runId,
      jobs.map((j) => ({ imageId: j.imageId, genTotal: resultCountOf(j.options) })),
    );
    // A known image that never started and has no job was registered by a producer that died
    // before adding it: add it now (BullMQ's job id keeps this from ever making two).
    const unsure = jobs.filter((_, i) => registered[i] === "not-started");
    const exists = unsure.length ? ((await unsure.reduce((p, j) => p.exists(`${queuePrefix}:detect:${jobId(j)}`), redis.pipeline()).exec()) ?? []) : [];
    const missing = new Set(unsure.filter((_, i) => exists[i]?.[1] === 0).map((j) => j.imageId));
    const toAdd = jobs.filter((j, i) => registered[i] === "new" || missing.has(j.imageId));
    if (toAdd.length) {
      await (queue as StageQueue<"detect">).addBulk(
        toAdd.map((j) => ({ name: "detect", data: { ...queuedImageOf(j, settingsId, base), kind: "detect" }, opts: { ...jobOptions(config.attempts), jobId: jobId(j) } })),
      );
    }
    const cursor = batch[batch.length - 1]?.cursor;
    if (cursor !== undefined) await opts.checkpoint?.(cursor);
    images += batch.length;
    added += toAdd.length;
    opts.onProgress?.({ images, added });
  };

  try {
    let batch: SourcedInput[] = [];
    for await (const entry of source) {
      batch.push(entry);
      if (batch.length >= perBatch) {
        await flush(batch);
        batch = [];
      }
    }
    await flush(batch);
    // A resumed producer with nothing left to add still ends the listing its predecessor began.
    if (run !== undefined || (await state.runExists(runId))) await state.listingDone(runId);
  } finally {
    await queue?.close();
  }
  return { runId, images, added, alreadyKnown: images - added };
}

/** fn over items, at most `limit` at once, results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}
