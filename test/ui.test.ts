/**
 * `maskfleet ui` (src/cli/ui.ts, src/runs/queue-browser.ts) in a real browser: Debian's chromium,
 * headless, through playwright-core. A run in progress on a private redis-server: its images
 * enqueued by the real producer, jobs in every stage in known states (active, waiting, failed,
 * completed, waiting for children), and a `maskfleet run` of its own queues. The UI started by the
 * CLI lists the four stage queues and the run's own queues with exactly those counts; read-only
 * it refuses every change (the API, not only the buttons), with --allow-retries it retries failed
 * jobs and still refuses the rest. The overview's screenshot goes to test/artifacts/.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { FlowProducer, Worker, type Queue } from "bullmq";
import type { Redis } from "ioredis";
import { chromium, type Browser, type Page } from "playwright-core";
import { enqueueInputs } from "../src/producer/enqueue.js";
import { startQueueBrowser } from "../src/runs/queue-browser.js";
import { resolveConfig } from "../src/config/config.js";
import { keyPrefix, openQueues, privateQueuePrefix, stages, type Stage } from "../src/pipeline/queues.js";
import { connect } from "../src/runtime/redis.js";
import { RunState } from "../src/runs/run-state.js";
import { cliEntry, freshRedis, repoRoot, runMaskfleet, scanKeys, scratchDir, until } from "./helpers.js";

const screenshot = join(repoRoot, "test", "artifacts", "queue-browser.png");
const photos = join(repoRoot, "samples", "photos");
const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

type Counts = Partial<Record<string, number>>;

/** What the run in progress holds, per queue as the board names it (0s left out). */
const expected: Record<string, Counts> = {
  detect: { active: 2, waiting: 4 }, // the six sample photos, two taken by a detect worker
  mask: { waiting: 3, failed: 1 },
  generate: { active: 1, waiting: 3, failed: 2 }, // the finalize flow's three children and one more, one taken
  finalize: { "waiting-children": 1, completed: 1 },
  "local-7:detect": { waiting: 2 }, // a `maskfleet run` of two photos, on its own queues
};
const total = (c: Counts) => Object.values(c).reduce((a = 0, b = 0) => a + b, 0) as number;

let redisUrl: string;
let redis: Redis;
let queues: Record<Stage, Queue>;
const workers: Worker[] = [];
let workerConnection: Redis;
let browser: Browser;
const children = new Set<ChildProcess>();
const failedGenerate = ["gen-failed-1", "gen-failed-2"];

/** Takes the next job of `stage` as a worker would (it is active), then fails or completes it as asked. */
async function take(stage: Stage, end?: "failed" | "completed"): Promise<void> {
  const worker = new Worker(stage, null, { connection: workerConnection, prefix: keyPrefix, autorun: false });
  workers.push(worker);
  const token = `ui-test-${workers.length}`;
  const job = await worker.getNextJob(token);
  assert.ok(job, `a ${stage} job to take`);
  if (end === "failed") await job.moveToFailed(new Error("Bedrock: ThrottlingException (too many requests)"), token, false);
  if (end === "completed") await job.moveToCompleted({ manifest: "out/x/manifest.json" }, token, false);
}

before(async () => {
  redisUrl = await freshRedis(1);
  redis = connect(redisUrl);
  workerConnection = connect(redisUrl);
  queues = openQueues(redis);
  const dir = await scratchDir("ui");
  const config = resolveConfig({ target: "auto", out: join(dir, "out"), redisUrl });

  // The real producer: six images into detect, and a `maskfleet run` of two on its own queues.
  await enqueueInputs(redis, config, "catalog-ui", [photos]);
  await enqueueInputs(redis, config, "local-7", [join(photos, "coffee.jpg"), join(photos, "rocket.jpg")], { queuePrefix: privateQueuePrefix("local-7") });
  await take("detect");
  await take("detect");

  // Failed and completed jobs leave maskfleet's queues at once (their outcome is in the run's
  // state); these are kept (removeOnFail/removeOnComplete false) so the board has some to show.
  const kept = { attempts: 1, removeOnFail: false, removeOnComplete: false };
  await queues.mask.add("mask", { runId: "catalog-ui", name: "chelsea.jpg" }, { ...kept, jobId: "mask-failed-1" });
  await take("mask", "failed");
  for (const name of ["astronaut.jpg", "coffee.jpg", "retina.jpg"]) await queues.mask.add("mask", { runId: "catalog-ui", name }, { jobId: `mask-${name}` });
  for (const id of failedGenerate) {
    await queues.generate.add("generate", { prompt: "a marble counter", seed: 34 }, { ...kept, jobId: id });
    await take("generate", "failed");
  }
  await queues.finalize.add("finalize", { runId: "catalog-ui", name: "hubble_deep_field.jpg" }, { ...kept, jobId: "finalize-done" });
  await take("finalize", "completed");
  // mask's fan-out: a finalize parent waiting for its generate children (src/stages/mask.ts).
  const flows = new FlowProducer({ connection: redis, prefix: keyPrefix });
  await flows.add({
    name: "finalize",
    queueName: "finalize",
    data: { runId: "catalog-ui", name: "rocket.jpg" },
    opts: { jobId: "finalize-rocket" },
    children: [34, 35, 36].map((seed) => ({ name: "generate", queueName: "generate", data: { seed }, opts: { jobId: `gen-rocket-${seed}` } })),
  });
  await flows.close();
  await queues.generate.add("generate", { seed: 37 }, { jobId: "gen-extra" });
  await take("generate");

  // The state the UI must show, as BullMQ itself counts it.
  for (const stage of stages) assert.deepEqual(await countsOf(queues[stage]), expected[stage], stage);

  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs });
});

after(async () => {
  for (const child of children) child.kill("SIGKILL");
  await browser?.close();
  await Promise.all(workers.map((w) => w.close(true)));
  await Promise.all(Object.values(queues ?? {}).map((q) => q.close()));
  await workerConnection?.quit();
  await redis?.quit();
});

/** A queue's job counts without the zeros. */
async function countsOf(queue: Queue): Promise<Counts> {
  const counts = await queue.getJobCounts("active", "waiting", "waiting-children", "prioritized", "completed", "failed", "delayed");
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
}

interface Ui {
  url: string;
  port: number;
  child: ChildProcess;
  stderr: () => string;
}

/** `maskfleet ui --port 0 ...args` through the real CLI, once it says where it listens. */
async function startUi(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ui> {
  const child = spawn(process.execPath, [cliEntry(), "ui", "--port", "0", ...args], {
    env: { ...process.env, MASKFLEET_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.add(child);
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
  await until("the queue browser's URL on stderr", () => /queue browser on /.test(stderr) || child.exitCode !== null, 20_000);
  const m = /^queue browser on (http:\/\/127\.0\.0\.1:(\d+)\/) \((.+)\)$/m.exec(stderr);
  assert.ok(m, `one line with the URL: ${stderr}`);
  return { url: m[1] as string, port: Number(m[2]), child, stderr: () => stderr };
}

/** SIGTERM: it closes and exits 0. */
async function stopUi(ui: Ui): Promise<void> {
  const exited = once(ui.child, "exit");
  ui.child.kill("SIGTERM");
  const [code] = (await exited) as [number | null];
  children.delete(ui.child);
  assert.equal(code, 0, ui.stderr());
  assert.match(ui.stderr(), /SIGTERM: closing the queue browser/);
}

/** The counts on a queue's status tabs, as the page shows them (a tab with no number is 0). */
async function shownCounts(page: Page, url: string, queue: string): Promise<Counts> {
  await page.goto(`${url}queue/${encodeURIComponent(queue)}`);
  const tabs = page.locator(`ul[class*="statusTabs"] a[href^="/queue/${encodeURIComponent(queue)}?status="]`);
  await page.waitForSelector('ul[class*="statusTabs"] [class*="badge"]', { timeout: 10_000 });
  const pairs = await tabs.evaluateAll((links) =>
    links.map((a) => [new URL(a.getAttribute("href") ?? "", "http://x").searchParams.get("status") ?? "", Number(a.querySelector('[class*="badge"]')?.textContent ?? 0)] as const),
  );
  return Object.fromEntries(pairs.filter(([, n]) => n > 0));
}

/** A request to bull-board's API: its status and body. */
async function api(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  const res = await fetch(new URL(path, url), { method, ...(body !== undefined && { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }) });
  return { status: res.status, body: await res.text() };
}

/** Every change bull-board offers (api/dist/routes.js), each at a job or a queue of the run. */
const changes: [string, string, unknown?][] = [
  ["PUT", "/api/queues/generate/retry/failed"],
  ["PUT", `/api/queues/generate/${failedGenerate[0]}/retry`],
  ["PUT", "/api/queues/finalize/retry/completed"],
  ["PUT", "/api/queues/finalize/finalize-done/retry"],
  ["PUT", "/api/queues/mask/clean/failed"],
  ["PUT", "/api/queues/mask/mask-failed-1/clean"],
  ["PUT", "/api/queues/detect/empty"],
  ["PUT", "/api/queues/detect/obliterate", {}],
  ["PUT", "/api/queues/detect/pause"],
  ["PUT", "/api/queues/pause"],
  ["PUT", "/api/queues/generate/promote"],
  ["POST", "/api/queues/mask/add", { name: "mask", data: {} }],
  ["PATCH", "/api/queues/mask/mask-coffee.jpg/update-data", { data: {} }],
  ["PUT", "/api/queues/local-7%3Adetect/empty"],
];

describe("maskfleet ui", { timeout: 60_000 }, () => {
  it("lists the four stage queues and a `maskfleet run`'s own queues with their counts; read-only, the API refuses every change", async () => {
    const ui = await startUi(["--redis", redisUrl]);
    assert.match(ui.stderr(), /\(read-only\)$/m);
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      // The overview: a card per queue, with its total.
      await page.goto(ui.url);
      const names = [...stages, ...stages.map((s) => `local-7:${s}`)];
      // The cards (a run's own queues grouped under the run); the sidebar lists them too.
      const overview = page.locator("main");
      await overview.locator('a[title="local-7:finalize"]').waitFor({ timeout: 10_000 });
      const cards = await overview.locator("li a[title]").evaluateAll((links) => links.map((a) => a.getAttribute("title")));
      assert.deepEqual([...cards].sort(), [...names].sort());
      for (const name of names) {
        const shown = await overview.locator(`li:has(a[title="${name}"]) [class*="total"]`).innerText();
        assert.equal(shown, `${total(expected[name] ?? {})} Jobs`, name);
      }
      await mkdir(join(repoRoot, "test", "artifacts"), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
      process.stdout.write(`# screenshot: ${screenshot}\n`);

      // Each queue's page: its counts per state.
      for (const [name, counts] of Object.entries(expected)) assert.deepEqual(await shownCounts(page, ui.url, name), counts, name);

      // No retry or clean buttons...
      await page.goto(`${ui.url}queue/generate?status=failed`);
      await page
        .getByText(failedGenerate[0] as string)
        .first()
        .waitFor();
      assert.equal(await page.getByRole("button", { name: /retry|clean/i }).count(), 0);
      // ...and the API refuses what they would do.
      for (const [method, path, body] of changes) {
        const r = await api(ui.url, method, path, body);
        assert.equal(r.status, 405, `${method} ${path}: ${r.status} ${r.body}`);
        assert.match(r.body, /QUEUE_READ_ONLY/);
      }
      for (const stage of stages) assert.deepEqual(await countsOf(queues[stage]), expected[stage], `${stage} unchanged`);
      assert.equal(await queues.detect.isPaused(), false);

      assert.equal((await api(ui.url, "GET", "/healthz")).status, 200);
      assert.equal((await api(ui.url, "GET", "/ready")).status, 200);
    } finally {
      await page.close();
      await stopUi(ui);
    }
  });

  it("--allow-retries: failed jobs are retried from the page and the API; everything else is still refused", async () => {
    // The Redis URL from the environment this time.
    const ui = await startUi(["--allow-retries"], { MASKFLEET_REDIS_URL: redisUrl });
    assert.match(ui.stderr(), /read-only but for retries of failed jobs/);

    // Its port is taken now: one line, exit 2. No Redis: one line, exit 1.
    const taken = await runMaskfleet(["ui", "--port", String(ui.port), "--redis", redisUrl]);
    assert.equal(taken.code, 2, taken.stderr);
    assert.equal(taken.stderr, `maskfleet: port: port ${ui.port} on 127.0.0.1 is in use (give another with --port, or 0 for any free one)\n`);
    const noRedis = await runMaskfleet(["ui", "--port", "0", "--redis", "redis://127.0.0.1:1"]);
    assert.equal(noRedis.code, 1, noRedis.stderr);
    assert.match(noRedis.stderr, /^maskfleet: cannot reach Redis at redis:\/\/127\.0\.0\.1:1: .*ECONNREFUSED.*\n$/);

    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      // Everything but a retry of failed jobs is refused; completed jobs are not run again.
      for (const [method, path, body] of changes.filter(([, p]) => !(p.endsWith("/retry/failed") || p.includes(`/${failedGenerate[0]}/retry`)))) {
        const r = await api(ui.url, method, path, body);
        assert.equal(r.status, 405, `${method} ${path}: ${r.status} ${r.body}`);
      }
      for (const stage of stages) assert.deepEqual(await countsOf(queues[stage]), expected[stage], `${stage} unchanged`);

      // One failed job through the API.
      const one = await api(ui.url, "PUT", "/api/queues/mask/mask-failed-1/retry");
      assert.equal(one.status, 204, one.body);
      assert.deepEqual(await countsOf(queues.mask), { waiting: 4 });

      // All of a queue's failed jobs from the page: "Retry all".
      await page.goto(`${ui.url}queue/generate?status=failed`);
      await page.getByRole("button", { name: "Retry all" }).click();
      await page.getByRole("alertdialog").getByRole("button", { name: "Confirm" }).click();
      await until("generate's failed jobs waiting again", async () => (await queues.generate.getFailedCount()) === 0, 10_000);
      assert.deepEqual(await countsOf(queues.generate), { active: 1, waiting: 5 });
      assert.deepEqual(await shownCounts(page, ui.url, "generate"), { active: 1, waiting: 5 });
      assert.deepEqual(await countsOf(queues.finalize), expected.finalize, "the completed job was not run again");
    } finally {
      await page.close();
      await stopUi(ui);
    }
  });

  it("a `maskfleet run`'s own queues join the board when it starts, and leave it when it has finished; browsing writes nothing", async () => {
    const board = await startQueueBrowser({ redisUrl, port: 0, host: "127.0.0.1", runsRefreshMs: 0 });
    const names = async () => ((await (await fetch(new URL("/api/queues", board.url))).json()) as { queues: { name: string }[] }).queues.map((q) => q.name);
    const ofRun = (runId: string) => stages.map((s) => `${runId}:${s}`);
    try {
      assert.deepEqual(await names(), [...stages, ...ofRun("local-7")]);
      // A run whose producer has just started: no queue keys yet, and looking at them adds none.
      const state = new RunState(redis);
      await state.create("local-8", { options: {}, out: "/tmp/out" });
      await state.setQueuePrefix("local-8", privateQueuePrefix("local-8"));
      await state.listingStarted("local-8");
      assert.deepEqual(await names(), [...stages, ...ofRun("local-7"), ...ofRun("local-8")]);
      assert.equal(((await (await fetch(new URL("/api/queues?activeQueue=local-8%3Adetect", board.url))).json()) as { queues: unknown[] }).queues.length, 12);
      assert.deepEqual(await scanKeys(redis, `${privateQueuePrefix("local-8")}:*`), []);

      await state.listingDone("local-8"); // no images: finished
      for (const image of await state.images("local-7")) {
        await state.finished("local-7", image.imageId, { outcome: "ok", stage: "finalize", name: image.name ?? image.imageId, failedResults: 0, causes: [] });
      }
      assert.deepEqual(await names(), [...stages]);
    } finally {
      await board.close();
    }
  });
});
