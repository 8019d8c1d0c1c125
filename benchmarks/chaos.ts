/**
 * The chaos run of test/chaos.test.ts against the same run without faults: a catalog (default 200
 * small photos x 1 prompt x 2 seeds = 400 Titan jobs) through detect x2, mask x2, generate x2,
 * finalize x1 `maskfleet worker` processes on a throw-away redis-server, with the S3 and Bedrock
 * stand-ins (30 ms per answer). With faults: a random worker SIGKILLed (and replaced) every ~3 s,
 * Redis crashed (SIGKILL, AOF fsync always) and restarted once at 40% of the images. Prints a
 * table and writes benchmarks/results/chaos.json.
 *
 *   npx tsx benchmarks/chaos.ts [--images 200] [--seed N] [--kill-every-ms 3000] [--lock-ms 5000]
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { runChaos, type ChaosReport } from "../test/scenarios/chaos.js";

const root = resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: {
    images: { type: "string", default: "200" },
    seed: { type: "string" },
    "kill-every-ms": { type: "string", default: "3000" },
    "lock-ms": { type: "string", default: "5000" },
  },
});
const images = Number(args.images);
const seed = args.seed ? Number(args.seed) : Date.now() % 2 ** 31;

function row(name: string, r: ChaosReport) {
  const d = r.delivery;
  return {
    name,
    images: r.images,
    generateJobs: r.images * 2,
    wallSeconds: Math.round(r.wallMs / 100) / 10,
    imagesPerMin: Math.round((r.images / (r.wallMs / 60_000)) * 10) / 10,
    kills: r.kills.length,
    killsPerStage: Object.fromEntries(["detect", "mask", "generate", "finalize"].map((s) => [s, r.kills.filter((k) => k.stage === s).length])),
    redisRestarts: r.redisRestarts,
    processesStarted: r.processesStarted,
    finished: r.status.finished,
    failed: r.status.failed,
    lost: r.images - r.status.succeeded + (r.images * 2 - d.keys),
    outputProblems: r.problems.length,
    bedrockRequests: r.requests.length,
    delivered: d.delivered,
    reAskedAfterLiveDelivery: d.violations.length,
    reAskedAfterReceiverKilled: d.afterReceiverKilled,
    answeredNotDelivered: d.undelivered,
  };
}

const rows = [];
for (const faults of [false, true]) {
  const name = faults ? "SIGKILLs + Redis crash" : "no faults";
  process.stderr.write(`${name}: ${images} images...\n`);
  const r = await runChaos({
    images,
    faults,
    seed,
    killEveryMs: Number(args["kill-every-ms"]),
    lockDurationMs: Number(args["lock-ms"]),
    timeoutMs: 600_000,
    name: faults ? "bench-chaos-redis" : "bench-calm-redis",
    onEvent: (line) => process.stderr.write(`  ${line}\n`),
  });
  rows.push(row(name, r));
}

const report = {
  benchmark: "chaos",
  date: new Date().toISOString(),
  node: process.version,
  seed,
  killEveryMs: Number(args["kill-every-ms"]),
  lockDurationMs: Number(args["lock-ms"]),
  rows,
};
await mkdir(join(root, "benchmarks", "results"), { recursive: true });
await writeFile(join(root, "benchmarks", "results", "chaos.json"), JSON.stringify(report, null, 2) + "\n");
console.log(`\n${images} images x 1 prompt x 2 seeds (Titan stand-in, 30 ms), 7 worker processes, lock ${args["lock-ms"]} ms, seed ${seed}`);
console.log(
  "| run | wall s | images/min | kills | Redis restarts | lost | output problems | delivered | re-asked after live delivery | re-asked after receiver killed | answered, not delivered |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.name} | ${r.wallSeconds} | ${r.imagesPerMin} | ${r.kills} | ${r.redisRestarts} | ${r.lost} | ${r.outputProblems} | ${r.delivered} | ${r.reAskedAfterLiveDelivery} | ${r.reAskedAfterReceiverKilled} | ${r.answeredNotDelivered} |`,
  );
}
console.log(`\nreport: benchmarks/results/chaos.json`);
process.exit(0);
