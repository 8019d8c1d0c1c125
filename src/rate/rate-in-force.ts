/**
 * The generator request rate in force for the fleet, for `report` and the metrics: a fixed
 * --rate (each generate pool with one records it in Redis when it starts) or the adaptive rate
 * the fleet found (src/rate/adaptive-rate.ts). The one written last wins.
 *
 *   maskfleet:rate:generate:fixed   hash: perSecond, updatedAt (ms); expires after a day
 */
import type { Redis } from "ioredis";
import { AdaptiveRate } from "./adaptive-rate.js";
import { keyPrefix } from "../pipeline/stages.js";

const ratePrefix = `${keyPrefix}:rate:generate`;
const fixedKey = `${ratePrefix}:fixed`;

export interface RateInForce {
  mode: "fixed" | "adaptive";
  perSecond: number;
  /** adaptive only: slow start until the first throttle, then steady. */
  phase?: "slow-start" | "steady";
  /** adaptive only: throttles reported and the cuts they caused. */
  throttles?: number;
  cuts?: number;
}

/** A fixed fleet-wide rate of `max` requests per `durationMs`, as requests per second. */
export function perSecondOf(rate: { max: number; durationMs: number }): number {
  return (rate.max * 1000) / rate.durationMs;
}

export async function recordFixedRate(redis: Redis, perSecond: number): Promise<void> {
  await redis.multi().hset(fixedKey, "perSecond", String(perSecond), "updatedAt", String(Date.now())).expire(fixedKey, 86_400).exec();
}

/** The fleet's adaptive rate (one per Redis). */
export function fleetAdaptiveRate(redis: Redis): AdaptiveRate {
  return new AdaptiveRate(redis, ratePrefix);
}

/** The rate in force, or null when no generate pool has paced requests in the last day. */
export async function rateInForce(redis: Redis): Promise<RateInForce | null> {
  const [fixed, fixedAt] = await redis.hmget(fixedKey, "perSecond", "updatedAt");
  const adaptive = await fleetAdaptiveRate(redis).current();
  const fixedTime = Number(fixedAt ?? 0);
  if (fixed && fixedTime >= adaptive.updatedAt) return { mode: "fixed", perSecond: Number(fixed) };
  if (adaptive.updatedAt === 0) return null;
  return { mode: "adaptive", perSecond: adaptive.perSecond, phase: adaptive.phase, throttles: adaptive.throttles, cuts: adaptive.cuts };
}

export function formatRateInForce(r: RateInForce | null): string {
  if (!r) return "generator rate: none in force";
  const perSecond = r.perSecond >= 10 ? r.perSecond.toFixed(0) : r.perSecond.toFixed(2);
  if (r.mode === "fixed") return `generator rate: ${perSecond}/s (fixed --rate)`;
  return `generator rate: ${perSecond}/s (adaptive, ${r.phase}; ${r.throttles} throttles, ${r.cuts} cuts)`;
}
