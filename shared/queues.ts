/** Queue names, the Redis connection, and the job options every stage shares. */
import { Queue, type ConnectionOptions, type JobsOptions } from "bullmq";
import { Redis } from "ioredis";

export const stages = ["detect", "mask", "generate", "finalize"] as const;
export type Stage = (typeof stages)[number];

/** Prefix of every Redis key maskfleet writes (BullMQ's and its own). */
export const keyPrefix = "maskfleet";

/** A connection for BullMQ: blocking commands need maxRetriesPerRequest null. */
export function connect(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false });
}

/** Fails fast (no endless reconnect loop) when Redis is not there at start. */
export async function assertRedisReachable(url: string, timeoutMs = 5000): Promise<void> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs });
  // The first error says why (ECONNREFUSED, WRONGPASS, ...); ioredis then reports only "Connection is closed".
  let cause: Error | undefined;
  probe.on("error", (err: Error) => void (cause ??= err));
  try {
    await probe.connect();
    await probe.ping();
  } catch (err) {
    const why = cause ?? (err as Error);
    throw new Error(`cannot reach Redis at ${url}: ${why.message.split("\n")[0]}`, { cause: err });
  } finally {
    probe.disconnect();
  }
}

export function jobOptions(attempts: number): JobsOptions {
  return {
    attempts,
    backoff: { type: "exponential", delay: 1000 },
    // Per-image state lives in maskfleet's own keys, so finished jobs can expire from BullMQ.
    removeOnComplete: { age: 7 * 24 * 3600 },
    removeOnFail: { age: 30 * 24 * 3600 },
  };
}

export function openQueue(stage: Stage, connection: ConnectionOptions): Queue {
  return new Queue(stage, { connection, prefix: keyPrefix });
}

export function openQueues(connection: ConnectionOptions): Record<Stage, Queue> {
  return Object.fromEntries(stages.map((s) => [s, openQueue(s, connection)])) as Record<Stage, Queue>;
}
