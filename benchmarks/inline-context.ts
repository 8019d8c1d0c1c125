/**
 * The stages without queues, for benchmarks: the real LocalContext (models, stores, image loading,
 * src/stages/context.ts) with in-process stand-ins for the queues, flow producer and run state (no
 * Redis). runInline() then takes one image through detectStage, maskStage, every generateStage and
 * finalizeStage in turn, in this process: exactly the per-photo work of the fleet, minus the fleet.
 */
import type { Job } from "bullmq";
import type { Config } from "../src/config/config.js";
import { awsSettingsOf } from "../src/config/config.js";
import {
  generateJobDataSchema,
  imageIdOf,
  imageJobSchema,
  outPrefixOf,
  queuedFinalizeSchema,
  queuedImageOf,
  resolveImageJob,
  type GenerateJobData,
  type ImageJob,
  type QueuedFinalize,
} from "../src/pipeline/jobs.js";
import { pickImageOptions } from "../src/config/image-options.js";
import type { PromptVars } from "../src/pipeline/prompts.js";
import { openStore } from "../src/storage/index.js";
import { contentIdOf } from "../src/producer/enqueue.js";
import { createLocalContext, type WorkerContext } from "../src/stages/context.js";
import { detectStage } from "../src/stages/detect.js";
import { finalizeStage } from "../src/stages/finalize.js";
import { generateStage } from "../src/stages/generate.js";
import type { GenerateResult } from "../src/pipeline/artifacts.js";
import type { Segmenter } from "../src/segmenters/segmenter.js";
import { maskStage } from "../src/stages/mask.js";

export interface InlineContext extends WorkerContext {
  /** Generate jobs the mask stage handed to the flow producer, not yet run, with their finalize parent's data. */
  readonly pendingGenerate: { data: GenerateJobData; parent: QueuedFinalize }[];
}

export interface InlineContextOptions {
  /** Replaces loadSegmenter (e.g. a naive segmenter to compare with); loaded once per spec. */
  segmenter?: (spec: string) => Promise<Segmenter>;
}

/** A context for running stage functions in this process, without Redis. */
export function inlineContext(config: Config, opts: InlineContextOptions = {}): InlineContext {
  const local = createLocalContext(config);
  const pendingGenerate: InlineContext["pendingGenerate"][number][] = [];
  const parents = new Map<string, { image: ImageJob; promptVars: PromptVars }>();
  // One run: this config's options and output.
  const run = { options: pickImageOptions(config), out: openStore(config.out, awsSettingsOf(config)).root };
  const resolve = (data: unknown) => resolveImageJob(queuedFinalizeSchema.omit({ promptVars: true }).parse(data), run);
  const replaced = new Map<string, Promise<Segmenter>>();
  const load = opts.segmenter;
  const noop = async () => undefined;
  const stub = <T>(value: unknown) => value as T;
  return {
    ...local,
    redis: stub<WorkerContext["redis"]>({}),
    queuePrefix: "inline",
    queues: stub<WorkerContext["queues"]>({ mask: { add: noop }, finalize: { getJob: noop }, detect: {}, generate: {} }),
    flows: stub<WorkerContext["flows"]>({
      add: async (flow: { data: unknown; children?: { data: unknown }[] }) => {
        const parent = queuedFinalizeSchema.parse(flow.data);
        parents.set(parent.imageId, { image: resolve(parent), promptVars: parent.promptVars });
        for (const child of flow.children ?? []) pendingGenerate.push({ data: generateJobDataSchema.parse(child.data), parent });
      },
    }),
    runState: stub<WorkerContext["runState"]>({ stageDone: noop, resultDone: noop, finished: noop }),
    imageJob: async (data) => resolve(data),
    imageOfGenerate: async (job) => {
      const parent = parents.get(String(job.parent?.id));
      if (!parent) throw new Error(`no finalize parent for generate job ${job.id}`);
      return parent;
    },
    // Local generators only: no fleet, no shared rate.
    adaptiveRate: () => undefined,
    pendingGenerate,
    segmenter: load
      ? (spec) => {
          let s = replaced.get(spec);
          if (!s) replaced.set(spec, (s = load(spec)));
          return s;
        }
      : local.segmenter,
    async close() {
      for (const s of await Promise.allSettled(replaced.values())) if (s.status === "fulfilled") await s.value.close();
      await local.close();
    },
  };
}

/** A BullMQ job as a stage function sees it (data and parent; finalize also reads its children's values). */
export function fakeJob(data: unknown, children: GenerateResult[] = [], parentId?: string): Job {
  return {
    id: (data as { imageId?: string }).imageId,
    data,
    ...(parentId && { parent: { id: parentId, queueKey: "inline:finalize" } }),
    getChildrenValues: async () => Object.fromEntries(children.map((c, i) => [`child:${i}`, c])),
    getIgnoredChildrenFailures: async () => ({}),
  } as unknown as Job;
}

/** The image job the producer would enqueue for one file (same id, options and output prefix). */
export async function imageJobFor(config: Config, path: string, name: string, boxes?: ImageJob["boxes"]): Promise<ImageJob> {
  const options = pickImageOptions(config);
  const out = openStore(config.out, awsSettingsOf(config)).root;
  const imageId = imageIdOf(await contentIdOf(path, awsSettingsOf(config)), out, options, boxes);
  return imageJobSchema.parse({ runId: "inline", imageId, input: path, name, out, outPrefix: outPrefixOf(name, imageId), options, boxes });
}

/** One image through every stage in turn, in this process. Returns the number of results written. */
export async function runInline(ctx: InlineContext, job: ImageJob): Promise<number> {
  const queued = queuedImageOf(job, "000000000000", job.options); // one option set: the settings id is not looked up
  await detectStage(fakeJob(queued), ctx);
  await maskStage(fakeJob(queued), ctx);
  const results: GenerateResult[] = [];
  let parent: QueuedFinalize | undefined;
  for (const g of ctx.pendingGenerate.splice(0)) {
    parent = g.parent;
    results.push(await generateStage(fakeJob(g.data, [], g.parent.imageId), ctx));
  }
  if (!parent) throw new Error(`${job.name}: the mask stage added no generate jobs`);
  const { ok } = await finalizeStage(fakeJob(parent, results), ctx);
  return ok;
}
