/**
 * The fleet's adaptive generator rate (src/rate/adaptive-rate.ts) on a throw-away redis-server: two
 * instances on two connections (two worker processes) share one rate and one pace; slow start,
 * the cut once per cooldown and the bounds; then 16 senders against an in-process stand-in that
 * throttles at 20 accepted requests per sliding second must settle near that limit.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { AdaptiveRate, type AdaptiveRateOptions } from "../src/rate/adaptive-rate.js";
import { startRedisServer, type RedisServer } from "./scenarios/redis-server.js";

let server: RedisServer;
let connA: Redis;
let connB: Redis;
let prefixes = 0;

/** Two instances of one fresh rate, on two connections. */
function pair(o: AdaptiveRateOptions): [AdaptiveRate, AdaptiveRate] {
  const prefix = `test:rate:${++prefixes}`;
  return [new AdaptiveRate(connA, prefix, o), new AdaptiveRate(connB, prefix, o)];
}

/** Makes a caller wait for a slot: successes raise the rate only while the pace holds callers back. */
async function contend(r: AdaptiveRate): Promise<void> {
  await Promise.all([r.acquire(), r.acquire()]);
}

const close = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual}, expected ${expected}`);

describe("adaptive generator rate", () => {
  before(async () => {
    server = await startRedisServer("adaptive-rate", { persistence: false });
    connA = new Redis(server.url);
    connB = new Redis(server.url);
  });
  after(async () => {
    connA.disconnect();
    connB.disconnect();
    await server.close();
  });

  it("is one rate for two processes: a success on one raises what the other sees, and expires after an idle day", async () => {
    const [a, b] = pair({ initialPerSecond: 5 });
    assert.deepEqual(await b.current(), { perSecond: 5, phase: "slow-start", throttles: 0, cuts: 0, ceiling: null, updatedAt: 0 });
    await a.succeeded();
    close((await b.current()).perSecond, 5, "a success while nobody waits for a slot (no demand) changes nothing");
    await Promise.all([a.acquire(), b.acquire()]);
    await a.succeeded();
    const seen = await b.current();
    close(seen.perSecond, 5.25, "rate seen by the other instance");
    assert.ok(Math.abs(seen.updatedAt - Date.now()) < 5000, `updatedAt ${seen.updatedAt} is Redis time`);
    const ttl = await connA.pttl(a.key);
    assert.ok(ttl > 86_000_000 && ttl <= 86_400_000, `expires in a day: ${ttl} ms`);
  });

  it("paces acquires across both instances together: N slots take about N/rate seconds", async () => {
    const [a, b] = pair({ initialPerSecond: 20 });
    const started = performance.now();
    const at: number[] = [];
    const take = (r: AdaptiveRate) => r.acquire().then((waited) => (at.push(performance.now() - started), waited));
    const waits = await Promise.all([...Array.from({ length: 10 }, () => take(a)), ...Array.from({ length: 10 }, () => take(b))]);
    at.sort((x, y) => x - y);
    const span = (at[19] ?? 0) - (at[0] ?? 0);
    // 19 intervals of 50 ms; each instance alone would be done in 450 ms.
    assert.ok(span >= 850 && span <= 1300, `20 slots at 20/s spanned ${span.toFixed(0)} ms`);
    const gaps = at.slice(1).map((t, i) => t - (at[i] ?? 0));
    assert.ok(gaps.filter((g) => g >= 40).length >= 15, `slots ~50 ms apart: ${gaps.map((g) => g.toFixed(0)).join(" ")}`);
    assert.ok(Math.max(...waits) >= 850, `the last caller reports its wait: ${Math.max(...waits).toFixed(0)} ms`);
  });

  it("grows in slow start, and only slowly after the first throttle", async () => {
    const [a, b] = pair({ initialPerSecond: 20 });
    await contend(a);
    for (let i = 0; i < 8; i++) await (i % 2 ? a : b).succeeded();
    let s = await b.current();
    close(s.perSecond, 22, "slow start: +0.25 per success");
    assert.equal(s.phase, "slow-start");
    await a.throttled();
    s = await b.current();
    close(s.perSecond, 22 * 0.85, "cut at the first throttle");
    assert.equal(s.phase, "steady");
    close(s.ceiling ?? 0, 22 * 0.9, "ceiling: the throttled rate less the slow-start overshoot");
    await contend(b);
    for (let i = 0; i < 8; i++) await a.succeeded();
    const grown = (await a.current()).perSecond - 22 * 0.85;
    assert.ok(grown > 0 && grown < 0.05, `steady: 8 successes add ${grown}, not 8 x 0.25`);
  });

  it("cuts by the factor once per cooldown, whichever instance reports the throttle", async () => {
    const [a, b] = pair({ initialPerSecond: 10, cooldownMs: 300 });
    await a.throttled();
    await b.throttled();
    await a.throttled();
    let s = await a.current();
    close(s.perSecond, 8.5, "one cut for three throttles within the cooldown");
    assert.equal(s.throttles, 3);
    assert.equal(s.cuts, 1);
    await sleep(350);
    await b.throttled();
    s = await a.current();
    close(s.perSecond, 8.5 * 0.85, "a second cut after the cooldown");
    assert.equal(s.cuts, 2);
  });

  it("stays within min and max", async () => {
    const [low] = pair({ initialPerSecond: 2, minPerSecond: 0.5, maxPerSecond: 3, cooldownMs: 0 });
    for (let i = 0; i < 12; i++) await low.throttled();
    assert.equal((await low.current()).perSecond, 0.5);
    const [high] = pair({ initialPerSecond: 2, minPerSecond: 0.5, maxPerSecond: 3 });
    await contend(high);
    for (let i = 0; i < 12; i++) await high.succeeded();
    assert.equal((await high.current()).perSecond, 3);
  });

  it("finds a limit of 20/s: 16 senders in two processes against 'throttle at 20 accepted in the last second'", async () => {
    const limit = 20;
    const runMs = 6500;
    const warmMs = 3000;
    const rates = pair({ initialPerSecond: 12 });
    const accepted: number[] = [];
    const sent: { t: number; ok: boolean }[] = [];
    const started = performance.now();
    const rule = (): boolean => {
      const t = performance.now();
      while (accepted.length && (accepted[0] ?? 0) <= t - 1000) accepted.shift();
      const ok = accepted.length < limit;
      if (ok) accepted.push(t);
      sent.push({ t: t - started, ok });
      return ok;
    };
    const sender = async (r: AdaptiveRate) => {
      while (performance.now() - started < runMs) {
        await r.acquire();
        const ok = rule();
        await sleep(20 + Math.random() * 30);
        await (ok ? r.succeeded() : r.throttled());
      }
    };
    await Promise.all(rates.flatMap((r) => Array.from({ length: 8 }, () => sender(r))));
    const after = sent.filter((s) => s.t >= warmMs && s.t < runMs);
    const perSecond = after.filter((s) => s.ok).length / ((runMs - warmMs) / 1000);
    const throttled = sent.filter((s) => !s.ok).length / sent.length;
    const figures = `accepted ${perSecond.toFixed(1)}/s after ${warmMs} ms, throttled ${(throttled * 100).toFixed(1)}% of ${sent.length}, state ${JSON.stringify(await rates[0].current())}`;
    assert.ok(perSecond >= 0.85 * limit, figures);
    assert.ok(throttled <= 0.05, figures);
  });
});
