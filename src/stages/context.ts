/**
 * What every stage of a worker process shares: the config, one Redis connection, the queues it
 * hands work on to, per-image run state, output stores, and models loaded once per process. The
 * part without Redis (stores, image loading, models) is a LocalContext of its own, which the
 * benchmarks use to run the stage functions without queues.
 */
import { basename } from "node:path";
import type { Redis } from "ioredis";
import type { Job } from "bullmq";
import { FlowProducer } from "bullmq";
import type { AwsSettings } from "../runtime/aws.js";
import { awsSettingsOf, type Config } from "../config/config.js";
import { decodeImage, type DecodedImage } from "../imaging/image.js";
import { readInput } from "../storage/input.js";
import { onnxSessionLoaded, timeStep, watchQueues } from "../runtime/metrics.js";
import { defaultIntraOpThreads } from "../runtime/onnx.js";
import { keyPrefix, openQueues, type StageQueues } from "../pipeline/queues.js";
import { RunState } from "../runs/run-state.js";
import { quietBullmqErrors } from "../runtime/redis.js";
import { openStore, type Store } from "../storage/index.js";
import { timedStore } from "../storage/timed.js";
import { loadSegmenter, type MaskSelection, type Segmenter } from "../segmenters/segmenter.js";
import { SalientModel } from "../segmenters/salient.js";
import { BedrockRemoveBackground, isBedrockSalient } from "../generators/stability-remove-background.js";
import { createBedrockClient } from "../generators/bedrock-client.js";

/** What the mask stage asks of a salient model: a local ONNX one or the Bedrock service. */
export type Salient = Pick<SalientModel, "name" | "executionProvider" | "predict" | "close">;
import { loadFaceDetector, loadTextDetectionModel, type Detector } from "../detectors/detector.js";
import type { Owlv2Model } from "../detectors/owlv2.js";
import { createRekognitionDetector } from "../detectors/rekognition.js";
import { generatorBackend } from "../generators/registry.js";
import type { Generator, PreparedEdit } from "../generators/generator.js";
import { LRUCache } from "lru-cache";
import type { AdaptiveRate } from "../rate/adaptive-rate.js";
import { fleetAdaptiveRate } from "../rate/rate-in-force.js";
import * as metrics from "../runtime/metrics.js";
import { queuedFinalizeSchema, queuedImageSchema, resolveImageJob, type ImageJob } from "../pipeline/jobs.js";
import { imageOptionsSchema, type ImageOptions } from "../config/image-options.js";
import type { PromptVars } from "../pipeline/prompts.js";
import { ConfigError } from "../runtime/errors.js";

export interface WorkerContext {
  readonly config: Config;
  readonly redis: Redis;
  readonly queues: StageQueues;
  /** The BullMQ prefix of `queues`: the shared one, or a `maskfleet run`'s own. */
  readonly queuePrefix: string;
  readonly flows: FlowProducer;
  readonly runState: RunState;
  /** AWS client settings of this process's config. */
  readonly aws: AwsSettings;
  store(root: string): Store;
  /** Reads (from a folder or S3) and decodes an image job's input, within the job's pixel limit. */
  loadImage(job: ImageJob): Promise<DecodedImage>;
  /** A segmenter, loaded once per (spec, refine, maskSelection) per process. */
  segmenter(spec: string, refine?: boolean, maskSelection?: MaskSelection): Promise<Segmenter>;
  /** The salient-object model of target auto (format "salient", or bedrock:remove-background), loaded once per process. */
  salient(spec: string): Promise<Salient>;
  faceDetector(spec: string, minConfidence: number): Promise<Detector>;
  /** Amazon Rekognition for a target ("face" or a label), one client per process. */
  rekognition(target: string, minConfidence: number, maxObjects: number): Promise<Detector>;
  /** A local text-prompted detector (format "owlv2") for a label target; the model is loaded once per spec. */
  textDetector(spec: string, target: string, minConfidence: number, maxObjects: number): Promise<Detector>;
  generator(options: ImageOptions): Promise<Generator>;
  /**
   * An image prepared by `generator` for its results, made by `load` once per process while it
   * stays in a bounded cache (preparedCacheEntries images, preparedCacheBytes bytes).
   */
  preparedEdit(image: ImageJob, generator: Generator, load: () => Promise<PreparedEdit>): Promise<PreparedEdit>;
  /** A queued image job (detect, mask, finalize) resolved against its run's options and output. */
  imageJob(data: unknown): Promise<ImageJob>;
  /** A generate job's image and prompt variables, read from its finalize parent (kept for the image's next results). */
  imageOfGenerate(job: Job): Promise<{ image: ImageJob; promptVars: PromptVars }>;
  /** The fleet's adaptive request rate for a cloud generator without a fixed --rate; undefined otherwise. */
  adaptiveRate(options: ImageOptions): AdaptiveRate | undefined;
  close(): Promise<void>;
}

/** Images kept prepared per process: enough for every job in flight, bounded in memory. */
const preparedCacheEntries = 32;
const preparedCacheBytes = 256 * 1024 * 1024;

/** Caches a promise per key so concurrent jobs share one load (and one failure is not cached). */
function memo<T>() {
  const cache = new Map<string, Promise<T>>();
  const get = (key: string, load: () => Promise<T>): Promise<T> => {
    let p = cache.get(key);
    if (!p) {
      p = load();
      p.catch(() => cache.delete(key));
      cache.set(key, p);
    }
    return p;
  };
  return { get, values: () => [...cache.values()] };
}

/** The parts of a context that need no Redis: output stores, image loading and the models. */
export type LocalContext = Omit<WorkerContext, "redis" | "queues" | "queuePrefix" | "flows" | "runState" | "adaptiveRate" | "imageJob" | "imageOfGenerate">;

/** Images of generate jobs kept per process: a few per job in flight (an image's results mostly run close together). */
const parentCacheEntries = 512;
/** Runs' settings kept per process (they never change while a run exists). */
const runCacheEntries = 64;

export function createLocalContext(config: Config): LocalContext {
  const aws = awsSettingsOf(config);
  const stores = new Map<string, Store>();
  const modelOpts = {
    executionProvider: config.executionProvider,
    // Every session of the process gets the same count; the mask pool's jobs are the ones that need the cores.
    intraOpThreads: config.threads || defaultIntraOpThreads(config.concurrency.mask),
    cacheDir: config.cacheDir,
  };
  const segmenters = memo<Segmenter>();
  const salients = memo<Salient>();
  const detectors = memo<Detector>();
  const textModels = memo<Owlv2Model>();
  const generators = memo<Generator>();
  const prepared = new LRUCache<string, PreparedEdit, () => Promise<PreparedEdit>>({
    max: preparedCacheEntries,
    maxSize: preparedCacheBytes,
    sizeCalculation: (p) => Math.max(1, p.bytes),
    fetchMethod: (_key, _stale, { context }) => context(),
  });
  // Loaded ONNX models are reported (maskfleet_onnx_session_info) until the context closes; the
  // provider asked for is the one in use (createSession never falls back).
  const unmark: (() => void)[] = [];
  const marked =
    (task: string) =>
    <T extends { name: string; executionProvider?: string }>(model: T): T => {
      unmark.push(onnxSessionLoaded(basename(model.name), task, model.executionProvider ?? config.executionProvider));
      return model;
    };
  return {
    config,
    aws,
    store(root) {
      let s = stores.get(root);
      if (!s) stores.set(root, (s = timedStore(openStore(root, aws))));
      return s;
    },
    async loadImage(job) {
      const bytes = await timeStep("input_read", () => readInput(job.input, job.name, aws));
      return timeStep("image_decode", () => decodeImage(bytes, job.name, { maxPixels: job.options.maxPixels }));
    },
    segmenter: (spec, refine = false, maskSelection) =>
      segmenters.get(JSON.stringify([spec, refine, maskSelection ?? null]), () =>
        loadSegmenter(spec, { ...modelOpts, refine, ...(maskSelection && { maskSelection }) }).then(marked("segment")),
      ),
    salient: (spec) =>
      salients.get(spec, async () =>
        isBedrockSalient(spec)
          ? new BedrockRemoveBackground(createBedrockClient(aws, { timeoutMs: config.requestTimeoutMs }))
          : SalientModel.load(spec, modelOpts).then(marked("salient")),
      ),
    faceDetector: (spec, minConfidence) =>
      detectors.get(JSON.stringify([spec, minConfidence]), () => loadFaceDetector(spec, { ...modelOpts, scoreThreshold: minConfidence }).then(marked("face-detect"))),
    rekognition: (target, minConfidence, maxObjects) =>
      detectors.get(JSON.stringify(["rekognition", target, minConfidence, maxObjects]), async () => createRekognitionDetector({ aws, target, minConfidence, maxObjects })),
    textDetector: async (spec, target, minConfidence, maxObjects) =>
      (await textModels.get(spec, () => loadTextDetectionModel(spec, modelOpts).then(marked("detect")))).detector(target, { scoreThreshold: minConfidence, maxObjects }),
    generator: (options) => {
      const backend = generatorBackend(options.generator);
      return generators.get(JSON.stringify(backend.instanceKey(options)), () => backend.open(options, { aws, timeoutMs: config.requestTimeoutMs }));
    },
    async preparedEdit(image, generator, load) {
      const p = await prepared.fetch(JSON.stringify([image.imageId, generator.name, image.options]), { context: load });
      if (!p) throw new Error(`${image.name}: the prepared image was not kept`);
      return p;
    },
    async close() {
      prepared.clear();
      const settled = await Promise.allSettled<{ close(): Promise<void> }>([
        ...segmenters.values(),
        ...salients.values(),
        ...detectors.values(),
        ...textModels.values(),
        ...generators.values(),
      ]);
      for (const s of settled) if (s.status === "fulfilled") await s.value.close();
      for (const u of unmark.splice(0)) u();
    },
  };
}

/** `queuePrefix`: the BullMQ prefix of the queues this context works on (default: the shared ones). */
export function createContext(config: Config, redis: Redis, queuePrefix = keyPrefix): WorkerContext {
  const local = createLocalContext(config);
  const queues = openQueues(redis, queuePrefix);
  const unwatchQueues = watchQueues(Object.values(queues)); // their depths, on every metrics scrape
  const flows = new FlowProducer({ connection: redis, prefix: queuePrefix });
  quietBullmqErrors(flows, redis, { flows: queuePrefix });
  let adaptive: AdaptiveRate | undefined;
  let gaugeTimer: NodeJS.Timeout | undefined;
  const runState = new RunState(redis);
  const runs = new LRUCache<string, { options: ImageOptions; out: string }>({
    max: runCacheEntries,
    fetchMethod: async (key) => {
      const [runId, settingsId] = JSON.parse(key) as [string, string];
      const settings = await runState.settings(runId, settingsId);
      // Permanent for the job: its run was cleaned while it waited.
      if (!settings) throw new ConfigError("run", `run ${runId} is gone (cleaned?)`);
      return { options: imageOptionsSchema.parse(settings.options), out: settings.out };
    },
  });
  const resolve = async (data: unknown) => {
    const queued = queuedImageSchema.parse(data);
    const run = await runs.fetch(JSON.stringify([queued.runId, queued.settings]));
    if (!run) throw new ConfigError("run", `run ${queued.runId} could not be read`);
    return resolveImageJob(queued, run);
  };
  const parents = new LRUCache<string, { image: ImageJob; promptVars: PromptVars }>({
    max: parentCacheEntries,
    fetchMethod: async (parentId) => {
      const parent = await queues.finalize.getJob(parentId);
      if (!parent) throw new Error(`finalize job ${parentId} is gone (cleaned?): its generate jobs cannot run`);
      const { promptVars } = queuedFinalizeSchema.parse(parent.data);
      return { image: await resolve(parent.data), promptVars };
    },
  });
  return {
    ...local,
    redis,
    queues,
    queuePrefix,
    flows,
    runState,
    imageJob: resolve,
    async imageOfGenerate(job) {
      const parentId = job.parent?.id;
      if (!parentId) throw new Error(`generate job ${job.id} has no finalize parent`);
      const image = await parents.fetch(parentId);
      if (!image) throw new Error(`generate job ${job.id}: its image could not be read`);
      return image;
    },
    adaptiveRate: (options) => {
      if (config.rate !== undefined || !generatorBackend(options.generator).needsAws) return undefined;
      if (!adaptive) {
        adaptive = fleetAdaptiveRate(redis);
        const rate = adaptive;
        // The rate the fleet found, for the metrics: read again every few seconds, not per request.
        gaugeTimer = setInterval(() => {
          rate.current().then(
            (s) => metrics.generateRate.set({ mode: "adaptive" }, s.perSecond),
            () => undefined,
          );
        }, 5000).unref();
      }
      return adaptive;
    },
    async close() {
      clearInterval(gaugeTimer);
      await local.close();
      unwatchQueues();
      await flows.close();
      await Promise.all(Object.values(queues).map((q) => q.close()));
    },
  };
}
