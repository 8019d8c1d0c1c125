/**
 * Memory stays bounded: one `maskfleet run` process (all four pools) over 200 photos, 1,000 jobs
 * (200 detect, 200 mask, 400 generate, 200 finalize). Its RSS once 50 images are done (warm:
 * sessions loaded, caches and heap grown) is compared with its RSS at the end; a leak of sharp
 * buffers, ONNX tensors or listeners would grow with the job count.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { connect } from "../src/runtime/redis.js";
import { runStatus } from "../src/runs/status.js";
import { photoVariant, photoVariantName } from "./fixtures/photo-variants.js";
import { cliEntry, freshRedis, scratchDir, tinyModels } from "./helpers.js";

/** RSS growth allowed between warm-up and the 1,000th job. */
const RSS_BOUND_MB = 64;
const IMAGES = 200;

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

describe("memory", () => {
  it(`RSS after 1,000 jobs is within ${RSS_BOUND_MB} MB of RSS after warm-up`, async (t) => {
    const redisUrl = await freshRedis(14);
    const models = await tinyModels();
    const dir = await scratchDir("memory");
    const photos = await scratchDir("memory/photos");
    for (let i = 0; i < IMAGES; i++) await writeFile(join(photos, photoVariantName(i)), await photoVariant(i, { width: 320 }));

    const child = spawn(
      process.execPath,
      [
        cliEntry(),
        "run",
        photos,
        "--run",
        "memory",
        "--out",
        join(dir, "out"),
        "--target",
        "auto",
        "--sam-model",
        models.sam,
        "--prompts",
        "studio white background",
        "soft grey backdrop",
        "--seeds",
        "1-1",
        "--redis",
        redisUrl,
        "--no-progress",
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, MASKFLEET_LOG_LEVEL: "warn" } },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const redis = connect(redisUrl);
    const samples: { finished: number; rss: number }[] = [];
    try {
      for (;;) {
        const code = await Promise.race([exited, new Promise<"running">((r) => setTimeout(() => r("running"), 250))]);
        if (code !== "running") {
          assert.equal(code, 0, stderr);
          break;
        }
        const finished = await runStatus(redis, "memory", false).then(
          (s) => s.finished,
          () => 0,
        );
        samples.push({ finished, rss: await rssMb(child.pid as number).catch(() => 0) });
      }
    } finally {
      child.kill();
      redis.disconnect();
    }
    const warm = Math.max(...samples.filter((s) => s.finished >= 50 && s.finished < 60 && s.rss > 0).map((s) => s.rss));
    const end = Math.max(...samples.filter((s) => s.finished >= IMAGES - 10 && s.rss > 0).map((s) => s.rss));
    t.diagnostic(`RSS warm (50 images) ${warm.toFixed(0)} MB, end (${IMAGES} images, 1,000 jobs) ${end.toFixed(0)} MB, ${samples.length} samples`);
    assert.ok(Number.isFinite(warm) && Number.isFinite(end), "RSS was sampled at warm-up and at the end");
    assert.ok(end - warm <= RSS_BOUND_MB, `RSS grew ${(end - warm).toFixed(0)} MB from warm-up to the end (bound ${RSS_BOUND_MB} MB)`);
  });
});
