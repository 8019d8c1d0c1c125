/**
 * The stages without queues, for benchmarks: a WorkerContext whose models, stores and image loading
 * are the real ones but whose queues, flow producer and run state are in-process stand-ins (no
 * Redis). runInline() then takes one image through detectStage, maskStage, every generateStage and
 * finalizeStage in turn, in this process: exactly the per-photo work of the fleet, minus the fleet.
 */
import type { Job } from "bullmq";
import type { Config } from "../shared/config.js";
import { awsSettingsOf } from "../shared/config.js";
import { decodeImage } from "../shared/image.js";
import { readInput } from "../shared/input.js";
import { generateJobSchema, imageIdOf, imageJobSchema, outPrefixOf, pickImageOptions, type GenerateJob, type ImageJob } from "../shared/jobs.js";
import { openStore, type Store } from "../shared/storage/index.js";
import { contentIdOf } from "../producer/enqueue.js";
import type { WorkerContext } from "../workers/context.js";
import { loadFaceDetector, type Detector } from "../workers/detect/detector.js";
import { detectStage } from "../workers/detect/stage.js";
import { finalizeStage } from "../workers/finalize/stage.js";
import { generatorKey, openGenerator } from "../workers/generate/backends.js";
import type { Generator } from "../workers/generate/generator.js";
import { generateStage, type GenerateResult } from "../workers/generate/stage.js";
import { loadSegmenter, type Segmenter } from "../workers/mask/segmenter.js";
import { maskStage } from "../workers/mask/stage.js";

export interface InlineContext extends WorkerContext {
  /** Generate jobs the mask stage handed to the flow producer, not yet run. */
  readonly pendingGenerate: GenerateJob[];
  /** Time spent in Store.write (ms, summed over calls). */
  readonly storeWrite: { ms: number; calls: number };
}

export interface InlineContextOptions {
  /** Replaces loadSegmenter (e.g. a naive segmenter to compare with). */
  segmenter?: (spec: string) => Promise<Segmenter>;
}

function once<T>() {
  const cache = new Map<string, Promise<T>>();
  return (key: string, load: () => Promise<T>): Promise<T> => {
    let p = cache.get(key);
    if (!p) cache.set(key, (p = load()));
    return p;
  };
}

/** A context for running stage functions in this process, without Redis. */
export function inlineContext(config: Config, opts: InlineContextOptions = {}): InlineContext {
  const aws = awsSettingsOf(config);
  const modelOpts = { executionProvider: config.executionProvider, intraOpThreads: config.threads || undefined, cacheDir: config.cacheDir };
  const stores = new Map<string, Store>();
  const storeWrite = { ms: 0, calls: 0 };
  const pendingGenerate: GenerateJob[] = [];
  const segmenters = once<Segmenter>();
  const detectors = once<Detector>();
  const generators = once<Generator>();
  const closers: Promise<{ close(): Promise<void> }>[] = [];
  const track = <T extends { close(): Promise<void> }>(p: Promise<T>): Promise<T> => (closers.push(p), p);
  const noop = async () => undefined;
  const stub = <T>(value: unknown) => value as T;
  return {
    config,
    redis: stub<WorkerContext["redis"]>({}),
    queues: stub<WorkerContext["queues"]>({ mask: { add: noop }, finalize: { getJob: noop }, detect: {}, generate: {} }),
    flows: stub<WorkerContext["flows"]>({
      add: async (flow: { children?: { data: unknown }[] }) => {
        for (const child of flow.children ?? []) pendingGenerate.push(generateJobSchema.parse(child.data));
      },
    }),
    runState: stub<WorkerContext["runState"]>({ stageDone: noop, resultDone: noop, failed: noop }),
    aws,
    pendingGenerate,
    storeWrite,
    store(root) {
      let s = stores.get(root);
      if (!s) {
        const inner = openStore(root, aws);
        s = Object.assign(Object.create(inner) as Store, {
          async write(key: string, body: Buffer, contentType?: string) {
            const t = performance.now();
            await inner.write(key, body, contentType);
            storeWrite.ms += performance.now() - t;
            storeWrite.calls++;
          },
        });
        stores.set(root, s);
      }
      return s;
    },
    async loadImage(job) {
      return decodeImage(await readInput(job.input, job.name, aws), job.name, { maxPixels: job.options.maxPixels });
    },
    segmenter: (spec) => segmenters(spec, () => track((opts.segmenter ?? ((s) => loadSegmenter(s, modelOpts)))(spec))),
    faceDetector: (spec, minConfidence) =>
      detectors(`${spec}:${minConfidence}`, () => track(loadFaceDetector(spec, { ...modelOpts, scoreThreshold: minConfidence }))),
    rekognition: () => Promise.reject(new Error("inline context: no Rekognition")),
    generator: (options) => generators(generatorKey(options), () => track(openGenerator(options, config))),
    async close() {
      for (const s of await Promise.allSettled(closers)) if (s.status === "fulfilled") await s.value.close();
    },
  };
}

/** A BullMQ job as a stage function sees it (data only; finalize also reads its children's values). */
export function fakeJob(data: unknown, children: GenerateResult[] = []): Job {
  return {
    data,
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
  await detectStage(fakeJob(job), ctx);
  await maskStage(fakeJob(job), ctx);
  const results: GenerateResult[] = [];
  for (const g of ctx.pendingGenerate.splice(0)) results.push(await generateStage(fakeJob(g), ctx));
  const { ok } = await finalizeStage(fakeJob(job, results), ctx);
  return ok;
}
