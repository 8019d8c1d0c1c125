/** Starts worker pools in this process (one stage for `worker`, all four for `run`) and stops them cleanly. */
import type { Worker } from "bullmq";
import type { Config } from "../shared/config.js";
import type { FatalServiceError } from "../shared/errors.js";
import { connect, type Stage } from "../shared/queues.js";
import { createContext, type WorkerContext } from "./context.js";
import { startPool } from "./pool.js";

export interface Fleet {
  ctx: WorkerContext;
  workers: Worker[];
  /** Rejects with the first FatalServiceError that stopped a pool; never settles otherwise. */
  fatal: Promise<never>;
  close(): Promise<void>;
}

export function startFleet(config: Config, stagesToRun: readonly Stage[], concurrency?: number): Fleet {
  const redis = connect(config.redisUrl);
  const ctx = createContext(config, redis);
  let reportFatal: (err: FatalServiceError) => void = () => undefined;
  const fatal = new Promise<never>((_, reject) => (reportFatal = reject));
  fatal.catch(() => undefined); // observed by whoever races it; never an unhandled rejection
  const workers = stagesToRun.map((stage) => startPool(stage, ctx, { concurrency: concurrency ?? config.concurrency[stage], onFatal: reportFatal }));
  let closing: Promise<void> | undefined;
  return {
    ctx,
    workers,
    fatal,
    close() {
      closing ??= (async () => {
        await Promise.all(workers.map((w) => w.close()));
        await ctx.close();
        await redis.quit();
      })();
      return closing;
    },
  };
}
