/** The local-folder store: atomic writes, nothing partial left behind, write errors classified. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "../src/runtime/errors.js";
import { LocalStore, writeError } from "../src/storage/local.js";
import { scratchDir } from "./helpers.js";

const errno = (code: string) => Object.assign(new Error(`${code}: failed`), { code });

describe("local store", () => {
  it("writes whole files, creates folders, and tells what exists", async () => {
    const store = new LocalStore(await scratchDir("store-basic"));
    assert.equal(await store.exists("a/b/c.json"), false);
    await store.write("a/b/c.json", Buffer.from('{"x":1}'));
    assert.equal(await store.exists("a/b/c.json"), true);
    assert.equal((await store.read("a/b/c.json")).toString(), '{"x":1}');
    await store.write("a/b/c.json", Buffer.from('{"x":2}'));
    assert.equal((await store.read("a/b/c.json")).toString(), '{"x":2}');
    assert.deepEqual(await readdir(join(store.root, "a/b")), ["c.json"], "no temporary file left");
  });

  it("refuses keys that leave the output folder", async () => {
    const store = new LocalStore(await scratchDir("store-escape"));
    assert.throws(() => store.locate("../outside.png"), /leaves the output folder/);
  });

  it("a failed write leaves the old content and no partial file", async () => {
    const dir = await scratchDir("store-failed");
    const store = new LocalStore(dir);
    // The target is a folder: the rename fails after the temporary file was written.
    await mkdir(join(dir, "x", "result.png"), { recursive: true });
    await writeFile(join(dir, "x", "result.png", "keep.txt"), "old");
    await assert.rejects(store.write("x/result.png", Buffer.alloc(1000, 7)));
    assert.deepEqual(await readdir(join(dir, "x")), ["result.png"]);
    assert.equal(await readFile(join(dir, "x", "result.png", "keep.txt"), "utf8"), "old");
  });

  it("permission and read-only errors are ConfigErrors on out (not retried); a full disk is transient", () => {
    for (const code of ["EACCES", "EPERM", "EROFS"]) {
      const e = writeError(errno(code), "/data/out/x.png");
      assert.ok(e instanceof ConfigError, code);
      assert.match(e.message, /^out: \/data\/out\/x\.png: (permission denied|read-only file system)$/);
    }
    const full = writeError(errno("ENOSPC"), "/data/out/x.png");
    assert.ok(!(full instanceof ConfigError));
    assert.equal(full.message, "/data/out/x.png: no space left on the device");
    const other = errno("EIO");
    assert.equal(writeError(other, "/p"), other);
  });
});
