/**
 * Sessions run on the process's onnxruntime thread: a long model run leaves the event loop free (BullMQ's
 * lock renewals, the metrics server, Redis replies), errors come back as errors, and an idle
 * session does not keep the process alive.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { createSession, Tensor } from "../src/runtime/onnx.js";
import { GraphBuilder, valueInfo, writeModel, type Value } from "./support/onnx/onnx-graph.js";
import { repoRoot, scratchDir } from "./helpers.js";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const SIDE = 384;

/** y = tanh(x W) applied `depth` times with one shared W: seconds of MatMul in a file of 0.6 MB. */
async function slowModel(dir: string, depth: number): Promise<string> {
  const g = new GraphBuilder(7);
  const w = g.param("w", [SIDE, SIDE], { kind: "normal", mean: 0, std: 1 / Math.sqrt(SIDE) });
  let x: Value = { name: "x", shape: [1, SIDE, SIDE], dtype: "float32" };
  for (let i = 0; i < depth; i++) x = g.node("Tanh", [g.matmul(x, w)], x.shape, {}, i === depth - 1 ? "y" : undefined);
  const file = join(dir, `slow-${depth}.onnx`);
  await writeModel(file, g, { graphName: "slow", producerName: "test", docString: "", inputs: [valueInfo("x", [1, SIDE, SIDE])], outputs: [valueInfo("y", [1, SIDE, SIDE])] });
  return file;
}

const input = () =>
  new Tensor(
    "float32",
    Float32Array.from({ length: SIDE * SIDE }, (_, i) => Math.sin(i)),
    [1, SIDE, SIDE],
  );

test("a long run leaves the event loop free; results and errors come back", async () => {
  const dir = await scratchDir("onnx-thread");
  const session = await createSession(await slowModel(dir, 600));
  try {
    assert.deepEqual([...session.inputNames], ["x"]);
    assert.deepEqual([...session.outputNames], ["y"]);
    await session.run({ x: input() }); // warm-up

    let last = performance.now();
    let worstGap = 0;
    let ticks = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
      ticks++;
    }, 10);
    const t0 = performance.now();
    const out = await session.run({ x: input() });
    const runMs = performance.now() - t0;
    clearInterval(timer);
    worstGap = Math.max(worstGap, performance.now() - last);

    const y = out.y;
    assert.ok(y);
    assert.deepEqual(y.dims, [1, SIDE, SIDE]);
    const data = y.data as Float32Array;
    assert.ok(data.every((v) => Number.isFinite(v) && Math.abs(v) <= 1) && data.some((v) => v !== 0));
    // On the calling thread the loop would stall for the whole run.
    assert.ok(runMs > 300, `the model should take a while to mean anything (${runMs.toFixed(0)} ms)`);
    assert.ok(worstGap < runMs / 3 && ticks > runMs / 50, `the event loop stalled ${worstGap.toFixed(0)} ms (${ticks} ticks) during a ${runMs.toFixed(0)} ms run`);

    // A bad feed is an error, and the session still works after it.
    await assert.rejects(session.run({ x: new Tensor("float32", new Float32Array(4), [1, 2, 2]) }), /dimension|shape|Got invalid/i);
    const again = await session.run({ x: input() });
    assert.deepEqual(Array.from((again.y?.data as Float32Array).subarray(0, 8)), Array.from(data.subarray(0, 8)));
  } finally {
    await session.release();
  }
  await assert.rejects(session.run({ x: input() }), /released/);
});

test("a file onnxruntime cannot load is a ModelError naming it; an idle session does not keep the process alive", async () => {
  const dir = await scratchDir("onnx-thread-bad");
  await assert.rejects(createSession(join(dir, "missing.onnx")), (err: Error) => err.name === "ModelError" && err.message.includes("missing.onnx"));
  const model = await slowModel(dir, 2);
  // Loaded, run once and never released: the process still ends on its own.
  const script = `import { createSession, Tensor } from ${JSON.stringify(join(repoRoot, "src/runtime/onnx.ts"))};
const s = await createSession(${JSON.stringify(model)});
const out = await s.run({ x: new Tensor("float32", new Float32Array(${SIDE * SIDE}), [1, ${SIDE}, ${SIDE}]) });
console.log(out.y.dims.join("x"));`;
  const t0 = performance.now();
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: dir, timeout: 30_000 });
  assert.equal(stdout.trim(), `1x${SIDE}x${SIDE}`);
  assert.ok(performance.now() - t0 < 30_000);
});
