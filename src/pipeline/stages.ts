/** The stage names and the Redis key prefix: the names every layer shares (no imports, so the runtime may use them). */
export const stages = ["detect", "mask", "generate", "finalize"] as const;
export type Stage = (typeof stages)[number];

/** Prefix of every Redis key maskfleet writes (BullMQ's and its own). */
export const keyPrefix = "maskfleet";
