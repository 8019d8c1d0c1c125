/**
 * Issue 6, several hosts on one machine: Redis in one network namespace, worker processes in
 * three others, all reaching Redis (and the S3 and Bedrock stand-ins) over a bridge only
 * (test/scenarios/multihost.ts, test/scenarios/netns.ts). A 300-image run completes with the pools
 * spread over the hosts; a second mask host started mid-run raises mask throughput (measured from
 * the workers' metrics); a host cut off mid-run (link down, its processes alive) loses nothing: its
 * jobs are taken over once their locks lapse.
 *
 * Needs network namespaces (root, or CAP_NET_ADMIN, and iproute2): skipped with the reason where
 * they cannot be made. MASKFLEET_MULTIHOST_IMAGES (default 300) sizes the run;
 * `npx tsx benchmarks/multihost.ts` runs the same scenario and writes the figures.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { assertNothingLost } from "./scenarios/chaos.js";
import { cores, runMultihost, type Throughput } from "./scenarios/multihost.js";
import { netnsUnavailable } from "./scenarios/netns.js";

const images = Number(process.env.MASKFLEET_MULTIHOST_IMAGES ?? 300);
const lockDurationMs = 4000;
const line = (t: Throughput) => `${t.perSecond.toFixed(2)} mask jobs/s (${t.jobs} in ${t.seconds.toFixed(1)} s; ${cores(t)})`;

describe("several hosts on one machine (network namespaces, a bridge)", () => {
  it(`${images} images, pools on hosts A and B, Redis on its own host: a second mask host raises mask throughput; host B cut off mid-run loses nothing`, async (t) => {
    const unavailable = await netnsUnavailable();
    if (unavailable) {
      t.skip(unavailable);
      return;
    }
    const r = await runMultihost({ images, lockDurationMs, onEvent: (l) => t.diagnostic(l) });
    const speedUp = r.twoMaskHosts.perSecond / r.oneMaskHost.perSecond;
    const taken = r.cut.takenOver;
    const figures =
      `mask on A: ${line(r.oneMaskHost)}; on A and C: ${line(r.twoMaskHosts)}; ${speedUp.toFixed(2)}x. ` +
      `B cut at ${r.cut.finishedAtCut}/${images} images with ${r.cut.activeOnHost} jobs active on it; ${taken.length} taken over, back in the queue after ` +
      `${taken.map((j) => j.releasedAfterMs).join("/")} ms, restarted after ${taken.map((j) => j.retakenAfterMs).join("/")} ms; wall ${(r.wallMs / 1000).toFixed(1)} s`;
    t.diagnostic(figures);

    // Workers ran on the hosts and reached Redis over the bridge only.
    const address = Object.fromEntries(r.topology.hosts.map((h) => [h.name, h.address]));
    assert.equal(r.redis.bind, address.redis, "redis-server listens on its host's bridge address only");
    assert.equal(r.redis.url, `redis://${address.redis}:6379`);
    for (const w of r.workers) assert.ok(w.metricsUrl.startsWith(`http://${address[w.host]}:`), `${w.host}/${w.stage} serves metrics on its host's address: ${w.metricsUrl}`);
    assert.deepEqual([...new Set(r.workers.map((w) => `${w.host}/${w.stage}`))].sort(), [
      "A/detect",
      "A/finalize",
      "A/generate",
      "A/mask",
      "B/detect",
      "B/finalize",
      "B/generate",
      "C/mask",
    ]);
    const known = new Set([r.topology.gateway, ...r.topology.hosts.map((h) => h.address)]);
    assert.deepEqual(
      r.redis.clientAddresses.filter((a) => !known.has(a)),
      [],
      "every Redis client comes from a bridge address",
    );
    for (const host of ["A", "B", "C", "root"]) assert.ok((r.redis.clientsByHost[host] ?? 0) > 0, `clients from ${host}: ${JSON.stringify(r.redis.clientsByHost)}`);

    // Nothing lost: every image complete and whole, no failure.
    assertNothingLost(r, images, 1, figures);

    // A second mask host raised mask throughput; neither window ran short of mask work.
    for (const w of [r.oneMaskHost, r.twoMaskHosts]) assert.ok(w.waitingAtEnd > 0 && w.jobs > 0, `mask jobs still waiting at the end of the window: ${JSON.stringify(w)}`);
    assert.deepEqual([r.oneMaskHost.maskHosts, r.twoMaskHosts.maskHosts], [["A"], ["A", "C"]]);
    assert.ok(speedUp > 1.3, `two mask hosts: ${speedUp.toFixed(2)}x the mask throughput of one (${figures})`);

    // Host B was cut off mid-run while its workers held jobs; those, and only those, were taken over.
    assert.ok(r.cut.finishedAtCut < images, "cut mid-run");
    assert.ok(r.cut.activeOnHost > 0, "host B's workers held jobs at the cut");
    assert.ok(taken.length > 0, `jobs taken over (${figures})`);
    assert.deepEqual(r.cut.stalledElsewhere, [], "no other job's lock lapsed");
    for (const j of taken) {
      // Locks are renewed every lockDuration/2: one lapses lockDuration/2..lockDuration after the
      // cut, and the stall check (every lockDuration) puts the job back within another lockDuration.
      assert.ok(
        j.releasedAfterMs >= lockDurationMs / 2 - 250 && j.releasedAfterMs <= 2 * lockDurationMs + 2000,
        `${j.queue} ${j.jobId} back in the queue ${j.releasedAfterMs} ms after the cut`,
      );
      assert.ok(j.retakenAfterMs >= j.releasedAfterMs && j.finishedAfterMs >= j.retakenAfterMs, `${j.queue} ${j.jobId}: ${JSON.stringify(j)}`);
      assert.equal(j.stalled, 1);
    }
    assert.ok(r.cut.aliveAtEnd, "host B's processes were alive, only unreachable, until the run had finished");
  });
});
