import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fromEnv, loadConfig, parseSeedRange, resolveConfig } from "../src/config/config.js";
import { ConfigError } from "../src/runtime/errors.js";
import { checkRunnable } from "../src/producer/enqueue.js";
import { generateJobsOf, imageIdOf, outPrefixOf } from "../src/pipeline/jobs.js";
import { pickImageOptions } from "../src/config/image-options.js";
import { stableJson } from "../src/pipeline/hash.js";
import { scratchDir } from "./helpers.js";
import { oldYaml } from "./fixtures/old-config.js";

describe("config", () => {
  it("loads the old script's YAML unchanged and maps its keys", async () => {
    const dir = await scratchDir("config");
    const file = join(dir, "old.yaml");
    await writeFile(file, oldYaml);
    const c = loadConfig({ file, env: {} });
    assert.deepEqual(c.prompts, ["a product photo on a marble kitchen counter", "a product photo in a sunny garden"]);
    assert.deepEqual(c.seeds, { from: 34, to: 46 });
    assert.equal(c.out, "./results");
    assert.equal(c.cfgScale, 8);
    assert.equal(c.width, 512);
    assert.equal(c.height, 512);
    assert.equal(c.resize, true);
    assert.equal(c.executionProvider, "cpu");
    assert.equal(c.modelId, "amazon.titan-image-generator-v1");
    assert.equal(c.generator, "titan", "a model id with no generator drives that model, as the old script did");
    assert.equal(c.target, "face");
    assert.equal(c.samModel, "sam-vit-h");
  });

  it("layers defaults < file < env < flags", async () => {
    const dir = await scratchDir("config-layers");
    const file = join(dir, "c.yaml");
    await writeFile(file, "samModel: from-file\nthreads: 3\nbackground: '#000000'\n");
    const c = loadConfig({ file, env: { MASKFLEET_SAM_MODEL: "from-env", MASKFLEET_THREADS: "5" }, overrides: { samModel: "from-flag" } });
    assert.equal(c.samModel, "from-flag");
    assert.equal(c.threads, 5);
    assert.equal(c.background, "#000000");
    assert.equal(c.generator, "composite");
    assert.deepEqual(fromEnv({ MASKFLEET_USE_GPU: "1", MASKFLEET_FEATHER_PX: "4" }), { featherPx: 4 });
  });

  it("fails on an invalid value naming the key", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ cfgScale: 11 }, /^cfgScale: /],
      [{ seeds: "46,34" }, /^seeds: .*start/],
      [{ seeds: "a,b" }, /^seeds: /],
      [{ prompts: [] }, /^prompts: /],
      [{ mode: "sideways" }, /^mode: /],
      [{ concurrency: { mask: 0 } }, /^concurrency\.mask: /],
      [{ colour: "red" }, /^colour: unknown key/],
      [{ minConfidence: Number("x") }, /^minConfidence: /],
      [{ rate: "60 per minute" }, /^rate: expected requests per time/],
      [{ rate: "0/s" }, /^rate: /],
      [{ generator: "nova", modelId: "amazon.titan-image-generator-v1" }, /^modelId: amazon.titan-image-generator-v1 is not a nova model/],
      [{ quality: "ultra" }, /^quality: /],
      [{ bedrockEndpoint: "not a url" }, /^bedrockEndpoint: /],
    ];
    for (const [input, pattern] of cases) {
      assert.throws(
        () => resolveConfig(input),
        (err: unknown) => err instanceof ConfigError && pattern.test(err.message),
        JSON.stringify(input),
      );
    }
    assert.throws(() => resolveConfig({ use_cuda: "yes" } as never), /use_cuda/);
  });

  it("parses rates and picks the Bedrock model per generator", () => {
    assert.deepEqual(resolveConfig({ rate: "60/min" }).rate, { max: 60, durationMs: 60_000 });
    assert.deepEqual(resolveConfig({ rate: "2/s" }).rate, { max: 2, durationMs: 1000 });
    assert.deepEqual(resolveConfig({ rate: "5/10s" }).rate, { max: 5, durationMs: 10_000 });
    assert.deepEqual(resolveConfig({ rate: 90 }).rate, { max: 90, durationMs: 60_000 });
    assert.equal(resolveConfig({}).rate, undefined);
    assert.equal(resolveConfig({ generator: "titan" }).modelId, "amazon.titan-image-generator-v2:0");
    assert.equal(resolveConfig({ generator: "nova" }).modelId, "amazon.nova-canvas-v1:0");
    assert.equal(resolveConfig({ modelId: "amazon.nova-canvas-v1:0" }).generator, "nova");
    assert.equal(resolveConfig({ modelId: "amazon.titan-image-generator-v1", generator: "composite" }).generator, "composite");
  });

  it("refuses at enqueue what the chosen generator cannot take", async () => {
    await assert.rejects(checkRunnable(resolveConfig({ generator: "nova", seeds: "858993459-858993460" })), /^ConfigError: seeds: amazon.nova-canvas-v1:0 takes seeds 0-858993459/);
    await assert.doesNotReject(checkRunnable(resolveConfig({ generator: "titan", seeds: "858993459-858993460" })));
    await assert.rejects(checkRunnable(resolveConfig({ prompts: ["a {colour} backdrop"] })), /^ConfigError: prompts: unknown placeholder \{colour\}/);
    await assert.doesNotReject(checkRunnable(resolveConfig({ target: "Car" })), "a label with the local detector goes to the text-prompted model");
    await assert.doesNotReject(checkRunnable(resolveConfig({ target: "Car", detector: "rekognition" })));
  });

  it("fails on old keys with bad values, naming them", async () => {
    const dir = await scratchDir("config-bad");
    const file = join(dir, "bad.yaml");
    await writeFile(file, "seed_range: 34\nuse_cuda: maybe\n");
    assert.throws(() => loadConfig({ file, env: {} }), /ConfigError: use_cuda: /);
    await writeFile(file, "checkpoint: my_finetune.pth\n");
    assert.throws(() => loadConfig({ file, env: {} }), /ConfigError: checkpoint: .*export it to ONNX/);
    await writeFile(file, "- a\n- b\n");
    assert.throws(() => loadConfig({ file, env: {} }), /mapping/);
  });

  it("a file that is not YAML (or not a config at all) is one line saying where, never quoting its contents", async () => {
    const dir = await scratchDir("config-not-yaml");
    const file = join(dir, "shadow");
    await writeFile(file, "root:$6$secret-hash:19000:0:99999:7:::\nfoo: [bar\n");
    await assert.rejects(
      async () => loadConfig({ file, env: {} }),
      (err: unknown) =>
        err instanceof ConfigError &&
        new RegExp(`^config: ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is not valid YAML at line \\d+, column \\d+: [^\\n]+$`).test(err.message) &&
        !err.message.includes("secret-hash") &&
        !err.message.includes("root:"),
    );
  });

  it("parses seed ranges inclusively", () => {
    assert.deepEqual(parseSeedRange("34,46"), { from: 34, to: 46 });
    assert.deepEqual(parseSeedRange("34-46"), { from: 34, to: 46 });
    assert.deepEqual(parseSeedRange([1, 2]), { from: 1, to: 2 });
    assert.deepEqual(parseSeedRange(7), { from: 7, to: 7 });
  });
});

describe("job ids", () => {
  const config = resolveConfig({ prompts: ["a", "b"], seeds: "34,46" });
  const options = pickImageOptions(config);

  it("are deterministic in content and output-affecting options only", () => {
    const id = imageIdOf(Buffer.from("photo"), "/out", options);
    assert.equal(imageIdOf(Buffer.from("photo"), "/out", { ...options }), id);
    assert.notEqual(imageIdOf(Buffer.from("photo2"), "/out", options), id);
    assert.notEqual(imageIdOf(Buffer.from("photo"), "/out2", options), id);
    assert.notEqual(imageIdOf(Buffer.from("photo"), "/out", { ...options, featherPx: 9 }), id);
    assert.notEqual(imageIdOf(Buffer.from("photo"), "/out", options, [{ x0: 1, y0: 1, x1: 2, y1: 2 }]), id);
    // Worker-only settings (threads, execution provider, concurrency) do not change ids.
    const other = pickImageOptions(resolveConfig({ prompts: ["a", "b"], seeds: "34,46", threads: 7, executionProvider: "cuda" }));
    assert.equal(imageIdOf(Buffer.from("photo"), "/out", other), id);
    assert.equal(stableJson({ b: 1, a: [2, { d: 1, c: 2 }] }), '{"a":[2,{"c":2,"d":1}],"b":1}');
  });

  it("fan out over prompts x seeds (inclusive) with distinct result keys", () => {
    const imageId = "0123456789abcdef01234567";
    const jobs = generateJobsOf({ runId: "r", imageId, input: "/x.jpg", name: "shoes/x.jpg", out: "/out", outPrefix: outPrefixOf("shoes/x.jpg", imageId), options });
    assert.equal(jobs.length, 2 * 13);
    assert.equal(new Set(jobs.map((j) => j.resultKey)).size, 26);
    assert.ok(jobs.every((j) => j.resultKey.startsWith("shoes_x-0123456789/results/")));
    assert.deepEqual([jobs[0]?.seed, jobs[12]?.seed, jobs[13]?.promptIndex], [34, 46, 1]);
  });
});
