/** Starts worker pools in this process (one stage for `worker`, all four for `run`) and stops them cleanly. */
import type { Worker } from "bullmq";
import type { Config } from "../shared/config.js";
import { connect, type Stage } from "../shared/queues.js";
import { createContext, type WorkerContext } from "./context.js";
import { startPool } from "./pool.js";

export interface Fleet {
  ctx: WorkerContext;
  workers: Worker[];
  close(): Promise<void>;
}

export function startFleet(config: Config, stagesToRun: readonly Stage[], concurrency?: number): Fleet {
  const redis = connect(config.redisUrl);
  const ctx = createContext(config, redis);
  const workers = stagesToRun.map((stage) => startPool(stage, ctx, concurrency ?? config.concurrency[stage]));
  let closing: Promise<void> | undefined;
  return {
    ctx,
    workers,
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
