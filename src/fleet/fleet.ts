/** Starts worker pools in this process (one stage for `worker`, all four for `run`) and stops them cleanly. */
import type { Config } from "../config/config.js";
import type { FatalServiceError } from "../runtime/errors.js";
import { type Stage } from "../pipeline/queues.js";
import { closeConnection, connect } from "../runtime/redis.js";
import { createContext, type WorkerContext } from "../stages/context.js";
import { startPool, type Pool } from "./pool.js";
import type { StageProcessor } from "../stages/index.js";

export interface Fleet {
  ctx: WorkerContext;
  pools: Pool[];
  /** Rejects with the first FatalServiceError that stopped a pool; never settles otherwise. */
  fatal: Promise<never>;
  close(): Promise<void>;
}

/**
 * `queuePrefix`: work on these queues instead of the shared ones (`maskfleet run`: its run's own).
 * `processors`: other work for a stage's jobs (benchmarks/scale.ts: no image work at all).
 */
export function startFleet(config: Config, stagesToRun: readonly Stage[], concurrency?: number, queuePrefix?: string, processors?: Partial<Record<Stage, StageProcessor>>): Fleet {
  const redis = connect(config.redisUrl);
  // `concurrency`, when given, is every pool's, and so the context's config's: its sessions share the cores among the mask pool's jobs.
  const poolConfig = concurrency === undefined ? config : { ...config, concurrency: { detect: concurrency, mask: concurrency, generate: concurrency, finalize: concurrency } };
  const ctx = createContext(poolConfig, redis, queuePrefix);
  let reportFatal: (err: FatalServiceError) => void = () => undefined;
  const fatal = new Promise<never>((_, reject) => (reportFatal = reject));
  fatal.catch(() => undefined); // observed by whoever races it; never an unhandled rejection
  const pools = stagesToRun.map((stage) =>
    startPool(stage, ctx, { concurrency: poolConfig.concurrency[stage], onFatal: reportFatal, ...(processors?.[stage] && { processor: processors[stage] }) }),
  );
  let closing: Promise<void> | undefined;
  return {
    ctx,
    pools,
    fatal,
    close() {
      closing ??= (async () => {
        // Stop taking jobs; let those in flight finish within the grace period, then hand them back
        // (their locks lapse and another worker picks them up; outputs are written atomically).
        await Promise.all(pools.map((p) => p.worker.pause(true)));
        let timer: NodeJS.Timeout | undefined;
        const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, config.shutdownGraceMs)));
        await Promise.race([Promise.all(pools.map((p) => p.idle())), graceOver]);
        clearTimeout(timer);
        await Promise.all(pools.map((p) => p.worker.close(true)));
        await ctx.close();
        await closeConnection(redis);
      })();
      return closing;
    },
  };
}
