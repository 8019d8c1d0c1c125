/**
 * The producer: turns inputs into detect jobs with deterministic ids, grouped under a run id.
 * Enqueueing the same images with the same options again adds no job.
 */
import { createReadStream } from "node:fs";
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { assertStabilityRegion, type AwsSettings } from "../shared/aws.js";
import { awsSettingsOf, type Config } from "../shared/config.js";
import { ConfigError } from "../shared/errors.js";
import { imageIdOf, imageJobSchema, outPrefixOf, pickImageOptions, generateJobsOf, usesSalient, type ImageJob } from "../shared/jobs.js";
import { jobOptions, keyPrefix, openQueue } from "../shared/queues.js";
import { generatorBackend } from "../generators/registry.js";
import { isBedrockSalient } from "../generators/stability-remove-background.js";
import { familyOf, stabilityModelFor } from "../generators/bedrock-models.js";
import { checkBedrockModels } from "../generators/lifecycle.js";
import { checkPromptTemplate } from "../shared/prompts.js";
import { RunState } from "../shared/run-state.js";
import { checkRunId } from "../shared/run-id.js";
import { checkResultsPerImage } from "../shared/config.js";
import { openStore } from "../shared/storage/index.js";
import { isS3Uri, parseS3Uri, s3Client } from "../shared/storage/s3.js";
import { modelSpecProblem, type Task } from "../models/registry.js";
import { DEFAULT_TEXT_DETECTOR_MODEL } from "../workers/detect/stage.js";

import type { InputItem } from "./discover.js";

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
 * What identifies an input's content: the sha256 of a local file; for an S3 object its ETag and
 * size (read with one HEAD request, so a catalog is not downloaded at enqueue). An unreadable
 * input still gets a stable id: the detect stage reports why it fails.
 */
export async function contentIdOf(input: string, aws: AwsSettings): Promise<Buffer> {
  try {
    if (isS3Uri(input)) {
      const { bucket, key } = parseS3Uri(input);
      const head = await s3Client(aws).send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(`s3:${head.ETag}:${head.ContentLength}`);
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

export async function enqueueImages(
  redis: Redis,
  config: Config,
  runId: string,
  items: InputItem[],
  opts: {
    onProgress?: (done: number, total: number) => void;
    /** The run's own queues (`maskfleet run`; recorded with the run so status, report and admin find them); default the shared ones. */
    queuePrefix?: string;
  } = {},
): Promise<EnqueueSummary> {
  const { onProgress, queuePrefix = keyPrefix } = opts;
  checkRunId(runId);
  await checkRunnable(config);
  if (config.target === "boxes") {
    const missing = items.find((i) => !i.boxes?.length);
    if (missing) throw new ConfigError("target", `target "boxes" needs boxes for every image; ${missing.name} has none`);
  }
  // A manifest row's own prompts: its fan-out is capped like the config's, before anything is written.
  for (const item of items) if (item.prompts) checkResultsPerImage(item.prompts.length, config.seeds, config.maxResultsPerImage, `${item.name} prompts`);
  const base = pickImageOptions(config);
  const queue = openQueue("detect", redis, queuePrefix);
  const state = new RunState(redis);
  if (queuePrefix !== keyPrefix) await state.setQueuePrefix(runId, queuePrefix);
  const aws = awsSettingsOf(config);
  const out = openStore(config.out, aws).root;
  let added = 0;
  try {
    for (const [i, item] of items.entries()) {
      for (const p of item.prompts ?? []) checkPromptTemplate(p, `${item.name} prompts`);
      const options = item.prompts ? { ...base, prompts: item.prompts } : base;
      const boxes = config.target === "boxes" ? item.boxes : undefined;
      const content = await contentIdOf(item.path, aws);
      const imageId = imageIdOf(content, out, options, boxes);
      const job: ImageJob = imageJobSchema.parse({
        runId,
        imageId,
        input: item.path,
        name: item.name,
        out,
        outPrefix: outPrefixOf(item.name, imageId),
        options,
        boxes,
      });
      const isNew = await state.register(runId, { imageId, name: item.name, outPrefix: job.outPrefix, genTotal: generateJobsOf(job).length });
      // A known image that never started and has no job was registered by a producer that died
      // before adding it: add it now (BullMQ's job id keeps this from ever making two).
      if (isNew || (!(await state.started(imageId)) && !(await queue.getJob(imageId)))) {
        await queue.add("detect", job, { ...jobOptions(config.attempts), jobId: imageId });
        added++;
      }
      onProgress?.(i + 1, items.length);
    }
  } finally {
    await queue.close();
  }
  return { runId, images: items.length, added, alreadyKnown: items.length - added };
}
