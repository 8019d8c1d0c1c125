/** Queue names, key prefixes, the job options every stage shares, and the typed queues (the connection: redis.ts). */
import { Queue, type ConnectionOptions, type FlowJob, type JobsOptions } from "bullmq";
import { quietBullmqErrors } from "../runtime/redis.js";
import { generateJobId, type DataOf } from "./jobs.js";

import { keyPrefix, type Stage } from "./stages.js";
export { keyPrefix, stages, type Stage } from "./stages.js";

export function jobOptions(attempts: number): JobsOptions {
  return {
    attempts,
    backoff: { type: "exponential", delay: 1000 },
    // A finished job's outcome is recorded in its run's compact state (src/runs/run-state.ts) before
    // it ends, so the job itself goes at once: Redis holds only unfinished work.
    removeOnComplete: true,
    removeOnFail: true,
  };
}

/**
 * The BullMQ prefix of one `maskfleet run`'s own queues: a run started with `run` works only on
 * its own jobs, never on other runs' jobs waiting in the shared queues (their settings, their
 * credentials, their output folders). `enqueue` and `worker` use the shared queues (keyPrefix).
 */
export function privateQueuePrefix(runId: string): string {
  return `${keyPrefix}:private:${runId}`;
}

/**
 * Events kept per queue for live listeners (QueueEvents): a run's progress is its own state
 * (src/runs/run-state.ts), so no history is needed, and BullMQ's default of 10,000 would cost about
 * as much Redis as the whole window of unfinished images.
 */
export const queueEventsKept = 1000;

/** A stage's queue, typed with the stage's job data. */
export type StageQueue<S extends Stage> = Queue<DataOf<S>>;
export type StageQueues = { [S in Stage]: StageQueue<S> };

export function openQueue<S extends Stage>(stage: S, connection: ConnectionOptions, prefix = keyPrefix): StageQueue<S> {
  const queue = new Queue<DataOf<S>>(stage, { connection, prefix, streams: { events: { maxLen: queueEventsKept } } });
  quietBullmqErrors(queue, connection, { queue: stage });
  return queue;
}

export function openQueues(connection: ConnectionOptions, prefix = keyPrefix): StageQueues {
  return {
    detect: openQueue("detect", connection, prefix),
    mask: openQueue("mask", connection, prefix),
    generate: openQueue("generate", connection, prefix),
    finalize: openQueue("finalize", connection, prefix),
  };
}

/**
 * An image's finalize job with generate jobs as its children, one BullMQ flow: finalize runs once
 * the last child has ended, failed ones included. Mask adds one per image (every prompt x seed),
 * `retry` one per image whose results failed (those results).
 */
export function finalizeFlow(finalize: DataOf<"finalize">, generate: readonly DataOf<"generate">[], o: { jobId: string; attempts: number }): FlowJob {
  return {
    name: "finalize",
    queueName: "finalize",
    data: finalize,
    opts: { ...jobOptions(o.attempts), jobId: o.jobId },
    children: generate.map((data) => ({
      name: "generate",
      queueName: "generate",
      data,
      opts: { ...jobOptions(o.attempts), jobId: generateJobId(o.jobId, data), ignoreDependencyOnFailure: true },
    })),
  };
}
