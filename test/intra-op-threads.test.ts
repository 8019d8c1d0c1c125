/**
 * Intra-op threads: `threads: 0` means the cores this process may use divided by the mask pool's
 * concurrency, at least 1, and the worker context's sessions get that count. onnxruntime does not
 * say how many threads a session has, but its intra-op pool of N threads is N - 1 OS threads of
 * the process beside the caller's: counted in /proc/self/task (Linux).
 */
import { describe, it, mock } from "node:test";
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import os from "node:os";
import { join } from "node:path";
import { resolveConfig } from "../src/config/config.js";
import { createSession, defaultIntraOpThreads } from "../src/runtime/onnx.js";
import { createLocalContext } from "../src/stages/context.js";
import { tinyModels } from "./helpers.js";

/** Runs `body` with os.availableParallelism() (and its named import) answering `cores`. */
async function withCores<T>(cores: number, body: () => Promise<T> | T): Promise<T> {
  const m = mock.method(os, "availableParallelism", () => cores);
  syncBuiltinESMExports();
  try {
    return await body();
  } finally {
    m.mock.restore();
    syncBuiltinESMExports();
  }
}

const osThreads = async () => (await readdir("/proc/self/task")).length;

/** OS threads `load` leaves in the process. */
async function threadsAdded(load: () => Promise<unknown>): Promise<number> {
  const before = await osThreads();
  await load();
  return (await osThreads()) - before;
}

describe("intra-op threads", () => {
  it("default: cores / concurrency, at least 1", async () => {
    assert.equal(defaultIntraOpThreads(1), os.availableParallelism());
    await withCores(6, () => {
      assert.deepEqual(
        [1, 2, 3, 4, 6, 7, 64].map((concurrency) => defaultIntraOpThreads(concurrency)),
        [6, 3, 2, 1, 1, 1, 1],
      );
    });
  });

  const linux = process.platform === "linux" ? {} : { skip: "counts threads in /proc/self/task" };

  it("a session of N intra-op threads adds N - 1 threads to the process", linux, async () => {
    const { sam } = await tinyModels();
    const decoder = join(sam, "decoder.onnx");
    // The onnxruntime thread and libuv's pool start on first use: not counted below.
    const first = await createSession(decoder, { intraOpThreads: 1 });
    try {
      for (const n of [1, 3, 5]) {
        let session: Awaited<ReturnType<typeof createSession>> | undefined;
        assert.equal(await threadsAdded(async () => (session = await createSession(decoder, { intraOpThreads: n }))), n - 1, `${n} threads`);
        await session?.release();
      }
    } finally {
      await first.release();
    }
  });

  it("a worker context's segmenter sessions get cores / concurrency.mask with threads 0, else threads", linux, async () => {
    const { sam } = await tinyModels();
    const warm = await createSession(join(sam, "decoder.onnx"), { intraOpThreads: 1 });
    try {
      // The tiny SAM is two sessions (encoder, decoder), each with the same count.
      const cases: [threads: number, maskConcurrency: number, perSession: number][] = [
        [0, 1, 6],
        [0, 2, 3],
        [0, 8, 1],
        [4, 2, 4],
      ];
      for (const [threads, mask, perSession] of cases) {
        const ctx = await withCores(6, () => createLocalContext(resolveConfig({ samModel: sam, threads, concurrency: { mask } })));
        try {
          const added = await threadsAdded(() => ctx.segmenter(sam));
          assert.equal(added, 2 * (perSession - 1), `threads ${threads}, mask concurrency ${mask}: ${perSession} per session`);
        } finally {
          await ctx.close();
        }
      }
    } finally {
      await warm.release();
    }
  });
});
