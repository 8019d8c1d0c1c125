/**
 * A photo is read once per generate worker, not once per result: benchmarks/store-reads.ts (one
 * photo in the local S3 server, 2 prompts x 13 seeds, the whole fleet in one process) must see
 * the input read by detect, mask, generate and finalize once each, and the mask read back once
 * by generate and once by finalize. Before the per-process cache it was 29 and 27.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { repoRoot, scratchDir } from "./helpers.js";

describe("store reads per image", () => {
  it("the input and its mask are read once per generate process, whatever the prompts x seeds", async () => {
    const out = join(await scratchDir("store-reads"), "store-reads.json");
    await promisify(execFile)(process.execPath, ["--import", "tsx", join(repoRoot, "benchmarks", "store-reads.ts"), "--out", out], { cwd: repoRoot, timeout: 180_000 });
    const r = JSON.parse(await readFile(out, "utf8")) as { results: number; inputReads: number; maskReads: number; resultChecks: number };
    assert.equal(r.results, 26);
    assert.equal(r.inputReads, 4, "detect, mask, one generate process, finalize");
    assert.equal(r.maskReads, 2, "one generate process, finalize");
    assert.equal(r.resultChecks, 26, "each result is checked once before it is paid for");
  });
});
