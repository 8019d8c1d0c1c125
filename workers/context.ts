/**
 * What every stage of a worker process shares: the config, one Redis connection, the queues it
 * hands work on to, per-image run state, output stores, and models loaded once per process.
 */
import type { Redis } from "ioredis";
import type { Queue } from "bullmq";
import { FlowProducer } from "bullmq";
import type { Config } from "../shared/config.js";
import { keyPrefix, openQueues, type Stage } from "../shared/queues.js";
import { RunState } from "../shared/run-state.js";
import { openStore, type Store } from "../shared/storage/index.js";
import { loadSegmenter, type Segmenter } from "./mask/segmenter.js";
import { loadFaceDetector, type Detector } from "./detect/detector.js";

export interface WorkerContext {
  readonly config: Config;
  readonly redis: Redis;
  readonly queues: Record<Stage, Queue>;
  readonly flows: FlowProducer;
  readonly runState: RunState;
  store(root: string): Store;
  segmenter(spec: string): Promise<Segmenter>;
  faceDetector(spec: string, minConfidence: number): Promise<Detector>;
  close(): Promise<void>;
}

/** Caches a promise per key so concurrent jobs share one load (and one failure is not cached). */
function memo<T>(load: (key: string) => Promise<T>) {
  const cache = new Map<string, Promise<T>>();
  const get = (key: string): Promise<T> => {
    let p = cache.get(key);
    if (!p) {
      p = load(key);
      p.catch(() => cache.delete(key));
      cache.set(key, p);
    }
    return p;
  };
  return { get, values: () => [...cache.values()] };
}

export function createContext(config: Config, redis: Redis): WorkerContext {
  const queues = openQueues(redis);
  const flows = new FlowProducer({ connection: redis, prefix: keyPrefix });
  const stores = new Map<string, Store>();
  const modelOpts = {
    executionProvider: config.executionProvider,
    intraOpThreads: config.threads || undefined,
    cacheDir: config.cacheDir,
  };
  const segmenters = memo((spec) => loadSegmenter(spec, modelOpts));
  const detectors = memo((key) => {
    const [spec, threshold] = JSON.parse(key) as [string, number];
    return loadFaceDetector(spec, { ...modelOpts, scoreThreshold: threshold });
  });
  return {
    config,
    redis,
    queues,
    flows,
    runState: new RunState(redis),
    store(root) {
      let s = stores.get(root);
      if (!s) stores.set(root, (s = openStore(root)));
      return s;
    },
    segmenter: (spec) => segmenters.get(spec),
    faceDetector: (spec, minConfidence) => detectors.get(JSON.stringify([spec, minConfidence])),
    async close() {
      const settled = await Promise.allSettled<{ close(): Promise<void> }>([...segmenters.values(), ...detectors.values()]);
      for (const s of settled) if (s.status === "fulfilled") await s.value.close();
      await flows.close();
      await Promise.all(Object.values(queues).map((q) => q.close()));
    },
  };
}
