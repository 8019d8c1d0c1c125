/**
 * The multi-host scenario of test/multihost.test.ts (test/scenarios/multihost.ts): Redis and the
 * worker hosts A, B, C in network namespaces on a bridge, 300 photos x 1 prompt x 1 seed; mask
 * throughput with one mask host (A) and two (A, C), from the workers' metrics; host B cut off
 * mid-run and its jobs taken over. Run as root (ip netns). Once with the other pools at nice 19
 * (the mask hosts get the cores first, as on machines of their own), once with every process at
 * the same priority (all hosts share this machine's cores as they come). Prints a table and writes
 * benchmarks/results/multihost.json.
 *
 *   sudo npx tsx benchmarks/multihost.ts [--images 300] [--window-ms 10000] [--lock-ms 4000] [--nice 19,0]
 */
import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { runMultihost, type MultihostReport, type Throughput } from "../test/scenarios/multihost.js";
import { netnsUnavailable } from "../test/scenarios/netns.js";

const root = resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: {
    images: { type: "string", default: "300" },
    "window-ms": { type: "string", default: "10000" },
    "lock-ms": { type: "string", default: "4000" },
    nice: { type: "string", default: "19,0" },
  },
});
const unavailable = await netnsUnavailable();
if (unavailable) {
  console.error(`multihost: ${unavailable}`);
  process.exit(1);
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const window = (t: Throughput) => ({
  maskHosts: t.maskHosts,
  jobs: t.jobs,
  seconds: round(t.seconds, 1),
  perSecond: round(t.perSecond),
  coresBusy: Object.fromEntries(Object.entries(t.cores).map(([k, v]) => [k, round(v)])),
  maskWaitingAtEnd: t.waitingAtEnd,
});

function row(othersNice: number, r: MultihostReport) {
  const taken = r.cut.takenOver;
  return {
    othersNice,
    images: r.images,
    wallSeconds: round(r.wallMs / 1000, 1),
    oneMaskHost: window(r.oneMaskHost),
    twoMaskHosts: window(r.twoMaskHosts),
    speedUp: round(r.twoMaskHosts.perSecond / r.oneMaskHost.perSecond),
    cut: {
      host: r.cut.host,
      atSeconds: round(r.cut.atMs / 1000, 1),
      finishedAtCut: r.cut.finishedAtCut,
      activeOnHost: r.cut.activeOnHost,
      takenOver: taken.map(({ queue, releasedAfterMs, retakenAfterMs, finishedAfterMs }) => ({ queue, releasedAfterMs, retakenAfterMs, finishedAfterMs })),
      stalledElsewhere: r.cut.stalledElsewhere.length,
    },
    finished: r.status.finished,
    failed: r.status.failed,
    outputProblems: r.problems.length,
    redisClientsByHost: r.redis.clientsByHost,
  };
}

const images = Number(args.images);
const lockDurationMs = Number(args["lock-ms"]);
const rows = [];
let topology: MultihostReport["topology"] | undefined;
for (const othersNice of args.nice.split(",").map(Number)) {
  process.stderr.write(`other pools at nice ${othersNice}: ${images} images...\n`);
  const t0 = Date.now();
  const r = await runMultihost({
    images,
    windowMs: Number(args["window-ms"]),
    lockDurationMs,
    othersNice,
    onEvent: (line) => process.stderr.write(`  [${((Date.now() - t0) / 1000).toFixed(1)} s] ${line}\n`),
  });
  topology = r.topology;
  rows.push(row(othersNice, r));
}

const report = { benchmark: "multihost", date: new Date().toISOString(), node: process.version, cpus: cpus().length, lockDurationMs, topology, rows };
await mkdir(join(root, "benchmarks", "results"), { recursive: true });
await writeFile(join(root, "benchmarks", "results", "multihost.json"), JSON.stringify(report, null, 2) + "\n");
console.log(
  `\n${images} images x 1 prompt x 1 seed (Titan stand-in, 300 ms), mask: ViT-B patch embedding + neck, 1 thread, concurrency 1; lock ${lockDurationMs} ms; ${cpus().length} CPUs shared by every host`,
);
console.log(
  "| other pools | mask jobs/s, host A | mask jobs/s, hosts A + C | speed-up | cores busy (mask / others), A | cores busy (mask / others), A + C | B cut at | B's jobs taken over: back in queue / restarted after, ms | lost | wall s |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  const busy = (w: ReturnType<typeof window>) => `${w.coresBusy.mask} / ${round((w.coresBusy.otherWorkers ?? 0) + (w.coresBusy.root ?? 0) + (w.coresBusy.redis ?? 0))}`;
  console.log(
    `| nice ${r.othersNice} | ${r.oneMaskHost.perSecond} | ${r.twoMaskHosts.perSecond} | ${r.speedUp}x | ${busy(r.oneMaskHost)} | ${busy(r.twoMaskHosts)} | ${r.cut.finishedAtCut}/${r.images} images | ` +
      `${r.cut.takenOver.map((j) => `${j.queue} ${j.releasedAfterMs}/${j.retakenAfterMs}`).join(", ")} | ${r.images - r.finished + r.failed} | ${r.wallSeconds} |`,
  );
}
console.log(`\nreport: benchmarks/results/multihost.json`);
process.exit(0);
