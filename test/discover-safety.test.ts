/**
 * Discovery on awkward trees: symlink loops and symlinked folders, files that are not images or
 * that this sharp build cannot decode (reported, never silently dropped), malformed manifests
 * (one line naming the file and line), and catalogs too large for `push(...array)`.
 */
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { realpathSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import * as discovery from "../src/producer/discover.js";
import { discoverInputs } from "../src/producer/discover.js";
import { findInputs } from "../src/producer/inputs.js";
import { ConfigError } from "../src/runtime/errors.js";
import { freshRedis, runMaskfleet, scratchDir } from "./helpers.js";

const names = (specs: string[]) => discoverInputs(specs).map((i) => i.name);

describe("discovery: symlinks", () => {
  it("a symlink loop is skipped and reported, not walked again and again", async () => {
    const dir = await scratchDir("discover-loop");
    await mkdir(join(dir, "a"));
    await writeFile(join(dir, "a", "x.jpg"), "x");
    await symlink("..", join(dir, "a", "loop")); // a/loop -> the root: a cycle
    await symlink("..", join(dir, "a", ".hidden-loop")); // hidden: left out quietly, as hidden files are
    assert.deepEqual(names([dir]), ["a/x.jpg"]);
    const found = discovery.discover([dir]);
    assert.deepEqual(
      found.items.map((i) => i.name),
      ["a/x.jpg"],
    );
    assert.deepEqual(
      found.skipped.map((s) => [s.name, s.reason]),
      [["a/loop", "symlink loop"]],
    );
    assert.deepEqual(found.followed, []);
    assert.equal(discovery.formatSkipped(found.skipped), "skipped 1 file: 1 symlink loop (a/loop)");
    // The same through a glob: names relative to the glob's base.
    assert.deepEqual(names([`${dir}/**/*.jpg`]), ["a/x.jpg"]);
    assert.deepEqual(
      discovery.discover([`${dir}/**/*.jpg`]).skipped.map((s) => [s.name, s.reason]),
      [["a/loop", "symlink loop"]],
    );

    // Two loops, each reachable through the other (2^40 paths before ELOOP without cycle detection).
    const two = await scratchDir("discover-loop-2");
    await mkdir(join(two, "p", "q"), { recursive: true });
    await writeFile(join(two, "p", "q", "y.png"), "y");
    await symlink("..", join(two, "p", "up"));
    await symlink("../..", join(two, "p", "q", "top"));
    await symlink("self", join(two, "self")); // a link to itself: ELOOP when resolved
    const t = discovery.discover([two]);
    assert.deepEqual(
      t.items.map((i) => i.name),
      ["p/q/y.png"],
    );
    assert.deepEqual(t.skipped.map((s) => [s.name, s.reason]).sort(), [
      ["p/q/top", "symlink loop"],
      ["p/up", "symlink loop"],
      ["self", "symlink loop"],
    ]);
  });

  it("follows a symlinked folder once, says so, and never lists a folder twice", async () => {
    const dir = await scratchDir("discover-links");
    const outside = await scratchDir("discover-links-target");
    await writeFile(join(outside, "far.jpg"), "f");
    await mkdir(join(dir, "in", "real"), { recursive: true });
    await writeFile(join(dir, "in", "real", "near.jpg"), "n");
    await symlink(outside, join(dir, "in", "ext")); // a folder outside the tree: followed
    await symlink(outside, join(dir, "in", "ext2")); // the same folder again: not listed twice
    await symlink("real", join(dir, "in", "same")); // a folder already in the tree: not listed twice
    await symlink("nowhere.jpg", join(dir, "in", "dead.jpg")); // a broken link
    assert.deepEqual(names([join(dir, "in")]), ["ext/far.jpg", "real/near.jpg"]);
    const found = discovery.discover([join(dir, "in")]);
    assert.deepEqual(found.followed, [{ name: "ext", target: realpathSync(outside) }]);
    assert.deepEqual(found.skipped.map((s) => [s.name, s.reason]).sort(), [
      ["dead.jpg", "broken symlink"],
      ["ext2", "symlinked folder already listed"],
      ["same", "symlinked folder already listed"],
    ]);
    assert.equal(discovery.formatSkipped(found.skipped), "skipped 3 files: 2 symlinked folders already listed (ext2, same), 1 broken symlink (dead.jpg)");
    assert.equal(discovery.formatFollowed(found.followed), `followed 1 symlinked folder: ext -> ${realpathSync(outside)}`);
  });
});

describe("discovery: what is not read", () => {
  it("lists only the extensions this sharp build decodes", () => {
    const readable = new Set(
      Object.values(sharp.format)
        .filter((f) => f.input.buffer)
        .flatMap((f) => f.input.fileSuffix ?? [])
        .map((s) => s.replace(/^\./, "")),
    );
    assert.ok(discovery.imageExtensions.length > 0);
    for (const ext of discovery.imageExtensions) assert.ok(readable.has(ext), `${ext} is read by sharp here`);
    for (const ext of ["jpg", "jpeg", "png", "webp", "tif", "tiff", "gif", "avif"]) assert.ok(discovery.imageExtensions.includes(ext), ext);
    assert.ok(!discovery.imageExtensions.includes("bmp"), "libvips as shipped with sharp reads no BMP");
    assert.ok(!discovery.imageExtensions.includes("svg"), "a vector drawing is not a photo");
    if (!readable.has("heic")) assert.ok(!discovery.imageExtensions.includes("heic"));
  });

  it("reports skipped files with reasons, per reason with a few examples", async () => {
    const dir = await scratchDir("discover-skipped");
    for (const f of ["a.jpg", "b.PNG", "c.svg", "d.txt", "e.bmp", "f.HEIC", "g.avif", "README", ".hidden.jpg", "notes.txt"]) await writeFile(join(dir, f), "x");
    assert.deepEqual(names([dir]), ["a.jpg", "b.PNG", "g.avif"]);
    const found = discovery.discover([dir]);
    assert.deepEqual(
      found.skipped.map((s) => [s.name, s.reason]),
      [
        ["README", "not an image"],
        ["c.svg", "not an image"],
        ["d.txt", "not an image"],
        ["e.bmp", "format not readable here"],
        ["f.HEIC", "format not readable here"],
        ["notes.txt", "not an image"],
      ],
    );
    assert.equal(discovery.formatSkipped(found.skipped), "skipped 6 files: 4 not images (.svg, .txt, README), 2 in formats sharp cannot read here (.bmp, .heic)");
    // A glob reports what it matched and cannot use.
    const globbed = discovery.discover([`${dir}/*.{bmp,jpg}`]);
    assert.deepEqual(
      globbed.items.map((i) => i.name),
      ["a.jpg"],
    );
    assert.equal(discovery.formatSkipped(globbed.skipped), "skipped 1 file: 1 in a format sharp cannot read here (.bmp)");
    // Nothing usable: the error says why.
    const none = await scratchDir("discover-skipped-none");
    await writeFile(join(none, "x.bmp"), "x");
    await assert.rejects(findInputs([none], { region: "us-east-1" }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `inputs: no images found in ${none} (skipped 1 file: 1 in a format sharp cannot read here (.bmp))`);
      return true;
    });
  });

  it("enqueue prints what it skipped, on stderr", async () => {
    const redis = await freshRedis(11);
    const dir = await scratchDir("discover-skipped-cli");
    await mkdir(join(dir, "in"));
    await sharp({ create: { width: 16, height: 16, channels: 3, background: "red" } })
      .png()
      .toFile(join(dir, "in", "one.png"));
    await writeFile(join(dir, "in", "logo.svg"), "<svg/>");
    await writeFile(join(dir, "in", "notes.txt"), "x");
    await symlink("..", join(dir, "in", "loop"));
    const res = await runMaskfleet(["enqueue", join(dir, "in"), "--run", "skips", "--out", join(dir, "out"), "--redis", redis, "--target", "auto"]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, "skips\n");
    assert.match(res.stderr, /^skipped 3 files: 2 not images \(\.svg, \.txt\), 1 symlink loop \(loop\)$/m);
    assert.match(res.stderr, /^enqueued 1 new images/m);
  });
});

describe("discovery: manifests", () => {
  it("a malformed CSV is one line naming the file and line", async () => {
    const dir = await scratchDir("discover-csv");
    const cols = join(dir, "cols.csv");
    await writeFile(cols, 'path,boxes,prompts\na.jpg,,\nb.jpg,"[[1,2,3,4]]",x,extra\n');
    assert.throws(
      () => discoverInputs([cols]),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.message, `inputs: ${cols} line 3: Invalid Record Length: columns length is 3, got 4`);
        return true;
      },
    );
    const quote = join(dir, "quote.csv");
    await writeFile(quote, 'path,boxes\na.jpg,x"y\n');
    assert.throws(
      () => discoverInputs([quote]),
      (err: unknown) => err instanceof ConfigError && err.message === `inputs: ${quote} line 2: Invalid Opening Quote: a quote is found on field …, value is …`,
    );

    // The CLI: that line, no stack trace, exit 2 as for every config error.
    const redis = await freshRedis(11);
    const res = await runMaskfleet(["enqueue", cols, "--out", join(dir, "out"), "--redis", redis, "--target", "boxes"]);
    assert.equal(res.code, 2);
    assert.equal(res.stderr, `maskfleet: inputs: ${cols} line 3: Invalid Record Length: columns length is 3, got 4\n`);
  });

  it("a malformed JSONL row names its line in the file, blank lines counted", async () => {
    const dir = await scratchDir("discover-jsonl");
    const file = join(dir, "m.jsonl");
    await writeFile(file, '{"path": "a.jpg"}\n\n{nope\n');
    assert.throws(
      () => discoverInputs([file]),
      (err: unknown) => err instanceof ConfigError && /^inputs: .*m\.jsonl line 3: not valid JSON: [^\n]+$/.test(err.message),
    );
  });

  it("a manifest that is some other file is refused without quoting its contents", async () => {
    const dir = await scratchDir("discover-not-a-manifest");
    const file = join(dir, "passwd.jsonl");
    await writeFile(file, "root:x:0:0:root:/root:/bin/bash\n");
    assert.throws(
      () => discoverInputs([file]),
      (err: unknown) => err instanceof ConfigError && /^inputs: .*passwd\.jsonl line 1: not valid JSON: [^\n]+$/.test(err.message) && !err.message.includes("root:x"),
    );
  });
});

describe("discovery: large catalogs", () => {
  const n = 200_000;
  let manifest: string;
  before(async () => {
    const dir = await scratchDir("discover-large");
    manifest = join(dir, "big.jsonl");
    await writeFile(manifest, Array.from({ length: n }, (_, i) => `{"path":"p/${i}.jpg"}`).join("\n"));
  });

  it("merges 200k inputs without spreading them into one call", async () => {
    const items = discoverInputs([manifest]);
    assert.equal(items.length, n);
    const all = await findInputs([manifest], { region: "us-east-1" });
    assert.equal(all.length, n);
    assert.equal(all[0]?.name, "p/0.jpg");
    assert.equal(all[n - 1]?.name, `p/${n - 1}.jpg`);
  });
});
