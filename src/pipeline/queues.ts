/** Queue names, key prefixes, and the job options every stage shares (the connection: redis.ts). */
import { Queue, type ConnectionOptions, type JobsOptions } from "bullmq";
import { quietBullmqErrors } from "../runtime/redis.js";

import { keyPrefix, stages, type Stage } from "./stages.js";
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

export function openQueue(stage: Stage, connection: ConnectionOptions, prefix = keyPrefix): Queue {
  const queue = new Queue(stage, { connection, prefix, streams: { events: { maxLen: queueEventsKept } } });
  quietBullmqErrors(queue, connection, { queue: stage });
  return queue;
}

export function openQueues(connection: ConnectionOptions, prefix = keyPrefix): Record<Stage, Queue> {
  return Object.fromEntries(stages.map((s) => [s, openQueue(s, connection, prefix)])) as Record<Stage, Queue>;
}
