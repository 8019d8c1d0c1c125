/**
 * The command line as a user runs it, in child processes: the old YAML drives a run (Titan where
 * the account still has it, Stability after the one-line migration) or is stopped by the lifecycle
 * gate with one clear line; errors are clear.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFile, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { oldYaml } from "./fixtures/old-config.js";
import { cliEntry, freshRedis, repoRoot, runMaskfleet, scratchDir, tinyModels } from "./helpers.js";
import { startBedrockStandIn } from "./standins/bedrock.js";
import { startBedrockControlStandIn, type ControlModel } from "./standins/bedrock-control.js";
import { standInCredentials } from "./scenarios/aws-fleet.js";

/**
 * The stand-ins' credentials and region, no shared AWS config files of this machine, and not the
 * SDK's own multi-line notice on Node < 22 (a process warning, not maskfleet's output).
 */
const awsEnv = (dir: string): NodeJS.ProcessEnv => ({
  ...standInCredentials,
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  AWS_REGION: "us-east-1",
  AWS_CONFIG_FILE: join(dir, "no-aws-config"),
  AWS_SHARED_CREDENTIALS_FILE: join(dir, "no-aws-credentials"),
});

/** The CLI in `cwd`, with the stand-ins' AWS credentials unless told otherwise. */
const maskfleet = (args: string[], cwd: string, env: NodeJS.ProcessEnv = standInCredentials) => runMaskfleet(args, { cwd, env });

/** Titan v1 still served to this account, as Legacy. */
const titanV1Legacy: ControlModel[] = [{ modelId: "amazon.titan-image-generator-v1", status: "LEGACY" }];

/** A scratch folder with photos/astronaut.jpg and config.yaml (the old YAML, plus `extra` lines). */
async function oldYamlDir(name: string, extra = ""): Promise<string> {
  const dir = await scratchDir(name);
  await scratchDir(`${name}/photos`);
  await copyFile(join(repoRoot, "samples/photos/astronaut.jpg"), join(dir, "photos/astronaut.jpg"));
  await writeFile(join(dir, "config.yaml"), oldYaml + extra);
  return dir;
}

/** Every key of the Redis database at `url`. */
async function redisKeys(url: string): Promise<string[]> {
  const r = new Redis(url);
  try {
    return await r.keys("*");
  } finally {
    r.disconnect();
  }
}

describe("maskfleet CLI", () => {
  it("the old script's YAML drives a Titan sweep end to end (Titan v1 still served to this account: Legacy, a warning)", async () => {
    const redis = await freshRedis(5);
    const models = await tinyModels();
    const bedrock = await startBedrockStandIn();
    const control = await startBedrockControlStandIn({ catalog: titanV1Legacy });
    try {
      const dir = await oldYamlDir("cli-old-yaml");
      // Only what cannot be had offline is overridden: the models (the YAML names sam_vit_h_4b8939.pth) and Bedrock's endpoints.
      const r = await maskfleet(
        [
          "run",
          "photos",
          "--config",
          "config.yaml",
          "--sam-model",
          models.sam,
          "--detector-model",
          models.face,
          "--bedrock-endpoint",
          bedrock.endpoint,
          "--redis",
          redis,
          "--no-progress",
        ],
        dir,
        { ...awsEnv(dir), AWS_ENDPOINT_URL_BEDROCK: control.endpoint },
      );
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const legacy = r.stderr.split("\n").filter((l) => /Legacy/.test(l));
      assert.equal(legacy.length, 1, r.stderr);
      assert.match(legacy[0] ?? "", /^maskfleet: Bedrock model amazon\.titan-image-generator-v1 is Legacy in us-east-1.*--generator stability/);
      assert.ok(control.requests.some((q) => q.operation === "GetFoundationModel" && q.path.endsWith("/amazon.titan-image-generator-v1") && q.status === 200));
      assert.match(r.stdout, /1\/1 images finished \(1 ok, 0 failed\)/);
      const [prefix] = await readdir(join(dir, "results"));
      assert.ok(prefix && prefix.startsWith("astronaut-"));
      const manifest = JSON.parse(await readFile(join(dir, "results", prefix, "manifest.json"), "utf8"));
      assert.equal(manifest.options.target, "face");
      assert.equal(manifest.options.generator, "titan");
      assert.ok(manifest.detections.boxes.length > 0 && manifest.detections.boxes.every((b: { label: string }) => b.label === "face"));
      // candidate_prompts (2) x seed_range 34..46 inclusive (13), each sent to Titan v1 exactly once
      assert.equal(manifest.results.length, 26);
      assert.ok(manifest.results.every((x: { status: string; generator: string }) => x.status === "ok" && x.generator === "amazon.titan-image-generator-v1"));
      const sent = bedrock.requests.filter((q) => q.status === 200);
      assert.equal(sent.length, 26);
      assert.ok(sent.every((q) => q.model === "amazon.titan-image-generator-v1" && q.taskType === "OUTPAINTING"));
      assert.deepEqual(new Set(sent.map((q) => `${q.prompt}|${q.seed}`)).size, 26);
      assert.deepEqual(
        [...new Set(sent.map((q) => q.seed))].sort((x, y) => (x ?? 0) - (y ?? 0)),
        Array.from({ length: 13 }, (_, i) => 34 + i),
      );
      assert.equal((await readdir(join(dir, "results", prefix, "results"))).length, 26);
    } finally {
      await bedrock.close();
      await control.close();
    }
  });

  it("the old YAML where Titan v1 is gone: run and enqueue stop with one line naming the model and --generator stability; nothing enqueued", async () => {
    const redis = await freshRedis(5);
    const models = await tinyModels();
    const bedrock = await startBedrockStandIn();
    const control = await startBedrockControlStandIn(); // the 2026-12 catalog: Titan v1 gone
    try {
      const dir = await oldYamlDir("cli-old-yaml-gone");
      const flags = ["--config", "config.yaml", "--sam-model", models.sam, "--detector-model", models.face, "--bedrock-endpoint", bedrock.endpoint, "--redis", redis];
      const env = { ...awsEnv(dir), AWS_ENDPOINT_URL_BEDROCK: control.endpoint };
      for (const args of [
        ["run", "photos", "--run", "gone-run", "--no-progress", ...flags],
        ["enqueue", "photos", "--run", "gone-enqueue", ...flags],
      ]) {
        const r = await maskfleet(args, dir, env);
        const what = `${args[0]}: ${r.stderr}${r.stdout}`;
        assert.equal(r.code, 2, what);
        const lines = r.stderr.trimEnd().split("\n");
        assert.equal(lines.length, 1, what);
        assert.match(lines[0] ?? "", /^maskfleet: modelId: amazon\.titan-image-generator-v1 (is not offered|reached end of life).*; use --generator stability\b/, what);
        assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
        assert.equal(r.stdout, "", what);
      }
      // Asked the control plane, then nothing: no request to the runtime, no key in Redis.
      assert.ok(control.requests.filter((q) => q.operation === "GetFoundationModel" && q.status === 404).length >= 2);
      assert.equal(bedrock.requests.length, 0);
      assert.deepEqual(await redisKeys(redis), []);
    } finally {
      await bedrock.close();
      await control.close();
    }
  });

  it("enqueue with a Legacy model: the warning, then it enqueues (exit 0)", async () => {
    const redis = await freshRedis(5);
    const models = await tinyModels();
    const control = await startBedrockControlStandIn({ catalog: titanV1Legacy });
    try {
      const dir = await oldYamlDir("cli-old-yaml-legacy");
      const r = await maskfleet(
        ["enqueue", "photos", "--run", "legacy", "--config", "config.yaml", "--sam-model", models.sam, "--detector-model", models.face, "--redis", redis],
        dir,
        { ...awsEnv(dir), AWS_ENDPOINT_URL_BEDROCK: control.endpoint },
      );
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stderr.trimEnd().split("\n");
      assert.match(lines[0] ?? "", /^maskfleet: Bedrock model amazon\.titan-image-generator-v1 is Legacy in us-east-1/, r.stderr);
      assert.match(r.stderr, /enqueued 1 new images \(0 already known\) as run legacy/);
      assert.equal(r.stdout.trim(), "legacy");
      assert.ok((await redisKeys(redis)).includes("maskfleet:run:legacy"));
    } finally {
      await control.close();
    }
  });

  it("the old YAML plus `generator: stability`: the Titan modelId is ignored with a warning; the sweep runs on Stability Inpaint", async () => {
    const redis = await freshRedis(5);
    const models = await tinyModels();
    const bedrock = await startBedrockStandIn();
    const control = await startBedrockControlStandIn();
    try {
      const dir = await oldYamlDir("cli-old-yaml-stability", "generator: stability\n");
      const r = await maskfleet(
        [
          "run",
          "photos",
          "--config",
          "config.yaml",
          "--sam-model",
          models.sam,
          "--detector-model",
          models.face,
          "--bedrock-endpoint",
          bedrock.endpoint,
          "--redis",
          redis,
          "--no-progress",
        ],
        dir,
        { ...awsEnv(dir), AWS_ENDPOINT_URL_BEDROCK: control.endpoint },
      );
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stderr, /^maskfleet: modelId amazon\.titan-image-generator-v1 is a titan model; generator stability calls Stability AI Image Services instead/m);
      assert.doesNotMatch(r.stderr, /Legacy/);
      assert.match(r.stdout, /1\/1 images finished \(1 ok, 0 failed\)/);
      const [prefix] = await readdir(join(dir, "results"));
      assert.ok(prefix && prefix.startsWith("astronaut-"));
      const manifest = JSON.parse(await readFile(join(dir, "results", prefix, "manifest.json"), "utf8"));
      assert.equal(manifest.options.generator, "stability");
      // candidate_prompts (2) x seed_range 34..46 (13), all made by Stable Image Inpaint
      assert.equal(manifest.results.length, 26);
      assert.ok(manifest.results.every((x: { status: string; generator: string }) => x.status === "ok" && x.generator === "us.stability.stable-image-inpaint-v1:0"));
      const sent = bedrock.requests.filter((q) => q.status === 200 && !q.filtered);
      assert.equal(sent.length, 26);
      assert.ok(sent.every((q) => q.model === "us.stability.stable-image-inpaint-v1:0" && q.service === "inpaint"));
      assert.equal(new Set(sent.map((q) => `${q.prompt}|${q.seed}`)).size, 26);
      assert.deepEqual(
        [...new Set(sent.map((q) => q.seed))].sort((x, y) => (x ?? 0) - (y ?? 0)),
        Array.from({ length: 13 }, (_, i) => 34 + i),
      );
      assert.deepEqual(new Set(sent.map((q) => q.prompt)), new Set(["a product photo on a marble kitchen counter", "a product photo in a sunny garden"]));
      // The gate asked about Stability only, never Titan.
      assert.ok(control.requests.length > 0 && control.requests.every((q) => !q.path.includes("titan")));
    } finally {
      await bedrock.close();
      await control.close();
    }
  });

  it("Bedrock without AWS credentials: one clear error before any work", async () => {
    const dir = await scratchDir("cli-no-credentials");
    await copyFile(join(repoRoot, "samples/photos/astronaut.jpg"), join(dir, "a.jpg"));
    const r = await maskfleet(["enqueue", "a.jpg", "--target", "auto", "--generator", "titan", "--profile", "maskfleet-no-such-profile"], dir, {
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_CONFIG_FILE: join(dir, "none"),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, "none"),
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^maskfleet: aws: no AWS credentials found in profile "maskfleet-no-such-profile"/m);
  });

  it("--version prints package.json's version and exits 0", async () => {
    const { version } = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { version: string };
    for (const flag of ["--version", "-V"]) {
      const r = await runMaskfleet([flag]);
      assert.deepEqual([r.code, r.stdout, r.stderr], [0, `${version}\n`, ""]);
    }
  });

  it("an invalid config fails before any work, naming the key", async () => {
    const dir = await scratchDir("cli-bad-config");
    await writeFile(join(dir, "c.yaml"), "cfgScale: 42\n");
    const r = await maskfleet(["enqueue", dir, "--config", "c.yaml"], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /maskfleet: cfgScale: .*10/);
    const r2 = await maskfleet(["run", dir, "--seeds", "9-3"], dir);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /seeds/);
  });

  it("a model that names nothing: run refuses it before any work; enqueue warns (workers resolve paths on their hosts)", async () => {
    const dir = await scratchDir("cli-bad-model");
    await copyFile(join(repoRoot, "samples/photos/astronaut.jpg"), join(dir, "a.jpg"));
    const models = await tinyModels();
    // Redis is not even asked: the model check comes first.
    const noRedis = ["--redis", "redis://127.0.0.1:6399", "--no-progress"];
    const typo = await maskfleet(["run", "a.jpg", "--target", "auto", "--sam-model", "sam-vit-z", ...noRedis], dir);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /^maskfleet: samModel: model "sam-vit-z" is neither a manifest name \(sam-vit-b, /m);
    const wrongTask = await maskfleet(["run", "a.jpg", "--target", "Car", "--text-detector-model", "sam-vit-b", ...noRedis], dir);
    assert.equal(wrongTask.code, 2);
    assert.match(wrongTask.stderr, /textDetectorModel: sam-vit-b is a segment model; a detect model is needed here/);
    const localWrongTask = await maskfleet(["run", "a.jpg", "--target", "auto", "--salient-model", models.face, ...noRedis], dir);
    assert.equal(localWrongTask.code, 2);
    assert.match(localWrongTask.stderr, /salientModel: .* is a face-detect model/);
    // Only the models the target uses are checked: a bad face detector does not matter to target auto.
    const unused = await maskfleet(["run", "a.jpg", "--target", "auto", "--detector-model", "nope", "--sam-model", models.sam, ...noRedis], dir);
    assert.equal(unused.code, 1);
    assert.match(unused.stderr, /cannot reach Redis/);

    const redis = await freshRedis(5);
    const enqueued = await maskfleet(["enqueue", "a.jpg", "--target", "auto", "--sam-model", "/models/on-the-workers/sam", "--redis", redis], dir);
    assert.equal(enqueued.code, 0, enqueued.stderr);
    assert.match(enqueued.stderr, /samModel: model "\/models\/on-the-workers\/sam" is neither .* \(the workers must have it on their hosts\)/);
  });

  it("enqueue --wait can be interrupted and the run re-attached with status --wait", async () => {
    const redis = await freshRedis(15);
    const models = await tinyModels();
    const dir = await scratchDir("cli-reattach");
    await scratchDir("cli-reattach/photos");
    for (const p of ["astronaut.jpg", "coffee.jpg", "rocket.jpg"]) await copyFile(join(repoRoot, "samples/photos", p), join(dir, "photos", p));
    const common = ["--target", "auto", "--sam-model", models.sam, "--redis", redis, "--seeds", "1-2"];
    const enqueue = spawn(process.execPath, [cliEntry(), "enqueue", "photos", "--run", "reattach", "--wait", ...common], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    enqueue.stderr.on("data", (d: Buffer) => (err += d.toString()));
    // No workers yet: interrupt the waiting producer once it has enqueued.
    while (!/enqueued 3 new images/.test(err)) await new Promise((r) => setTimeout(r, 100));
    enqueue.kill("SIGINT");
    const code = await new Promise<number | null>((resolve) => enqueue.on("exit", resolve));
    assert.equal(code, 130);
    assert.match(err, /detached from run reattach; it goes on\. Re-attach: maskfleet status reattach --wait/);
    // Workers come; status --wait follows the run to its end.
    const worker = spawn(process.execPath, [cliEntry(), "worker", "detect", ...common], { cwd: dir, stdio: "ignore" });
    const others = ["mask", "generate", "finalize"].map((stage) => spawn(process.execPath, [cliEntry(), "worker", stage, ...common], { cwd: dir, stdio: "ignore" }));
    try {
      const r = await maskfleet(["status", "reattach", "--wait", "--json", "--redis", redis], dir);
      assert.equal(r.code, 0, r.stderr);
      const status = JSON.parse(r.stdout);
      assert.deepEqual([status.total, status.succeeded, status.failed], [3, 3, 0]);
      assert.deepEqual(status.stages.generate, { done: 6, total: 6 });
    } finally {
      const all = [worker, ...others];
      for (const w of all) w.kill("SIGTERM");
      const codes = await Promise.all(all.map((w) => new Promise<number | null>((resolve) => (w.exitCode !== null ? resolve(w.exitCode) : w.on("exit", resolve)))));
      assert.deepEqual(codes, [0, 0, 0, 0], "workers exit 0 on SIGTERM");
    }
  });

  it("Redis unreachable at start: a clear error, non-zero exit, no hang", async () => {
    const dir = await scratchDir("cli-no-redis");
    await copyFile(join(repoRoot, "samples/photos/astronaut.jpg"), join(dir, "a.jpg"));
    const started = Date.now();
    const r = await maskfleet(["enqueue", "a.jpg", "--target", "auto", "--redis", "redis://127.0.0.1:6399"], dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach Redis at redis:\/\/127\.0\.0\.1:6399/);
    assert.ok(Date.now() - started < 20_000);
  });
});
