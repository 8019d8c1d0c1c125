/**
 * The input stream: the order of the old global sort, a cursor after every item that resumes
 * exactly after it (folders, globs, manifests, S3 pages, several specs), S3 resumed without
 * listing earlier pages again, and memory that stays flat however many inputs go by.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { linkSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { discoverInputs, imageExtensions } from "../src/producer/discover.js";
import { streamInputs, type InputStreamOptions, type StreamedInput } from "../src/producer/input-stream.js";
import type { AwsSettings } from "../src/runtime/aws.js";
import { ConfigError } from "../src/runtime/errors.js";
import { s3Client } from "../src/storage/s3.js";
import { scratchDir } from "./helpers.js";
import { startS3Server, type S3Server } from "./standins/s3-server.js";

// Dummy credentials for the SDK's default chain: requests go to the stand-in on 127.0.0.1 only.
process.env.AWS_ACCESS_KEY_ID = "AKIAMASKFLEETTEST";
process.env.AWS_SECRET_ACCESS_KEY = "maskfleet-test-secret";
delete process.env.AWS_SESSION_TOKEN;
delete process.env.AWS_PROFILE;

let server: S3Server;
let aws: AwsSettings;

before(async () => {
  server = await startS3Server();
  aws = { region: "us-east-1", endpoints: { s3: server.endpoint } };
});
after(() => server.close());

async function collect(specs: readonly string[], opts: InputStreamOptions = {}): Promise<{ item: StreamedInput; cursor: string }[]> {
  const out: { item: StreamedInput; cursor: string }[] = [];
  for await (const entry of streamInputs(specs, aws, opts)) out.push(entry);
  return out;
}

/** Resuming after each cursor of a full walk gives exactly the rest of it, cursors included. */
async function assertResumesEverywhere(specs: readonly string[], opts: InputStreamOptions = {}): Promise<void> {
  const all = await collect(specs, opts);
  assert.ok(all.length > 0, "the specs name some inputs");
  for (const [i, { cursor }] of all.entries()) {
    assert.equal(JSON.parse(JSON.stringify({ cursor })).cursor, cursor, "a cursor survives JSON");
    const rest = await collect(specs, { ...opts, after: cursor });
    assert.deepEqual(rest, all.slice(i + 1), `resumed after item ${i + 1} of ${all.length}`);
  }
}

/** Every file and folder below `dir`, relative to it. */
const allBelow = (dir: string) => readdirSync(dir, { recursive: true, encoding: "utf8" });

const isImage = (name: string) => imageExtensions.includes(name.slice(name.lastIndexOf(".") + 1).toLowerCase());

/** A tree whose names sort on the characters around "/": "a-b.jpg" < "a.jpg" < "a/b.jpg" < "a0.jpg" ("-" < "." < "/" < "0"). */
async function trickyTree(name: string): Promise<string> {
  const dir = await scratchDir(name);
  const files = [
    "a.jpg",
    "a/b.jpg",
    "a-b.jpg",
    "a0.jpg",
    "a/a.jpg",
    "a/b/c.jpg",
    "a b.jpg",
    "ab/c.png",
    "B.jpg",
    "b.jpg",
    "a/b.txt",
    "a/b-c/d.jpg",
    "Z/z.webp",
    "é.jpg",
    "a/.hidden.jpg",
    ".git/x.jpg",
    "notes.txt",
  ];
  for (const f of files) {
    await mkdir(join(dir, f, ".."), { recursive: true });
    await writeFile(join(dir, f), "x");
  }
  return dir;
}

describe("streamInputs: order", () => {
  it("walks a folder in the order of its paths sorted as strings, as discovery always listed them", async () => {
    const dir = await trickyTree("input-stream-order");
    const expected = allBelow(dir)
      .filter((f) => isImage(f) && !f.split("/").some((s) => s.startsWith(".")))
      .map((f) => join(dir, f))
      .sort()
      .map((p) => relative(dir, p));
    const names = (await collect([dir])).map((e) => e.item.name);
    assert.deepEqual(names, expected);
    assert.deepEqual(names.slice(0, 6), ["B.jpg", "Z/z.webp", "a b.jpg", "a-b.jpg", "a.jpg", "a/a.jpg"]);
    // A glob: the same order over what it matches, names relative to its static base.
    const jpgs = (await collect([`${dir}/**/*.jpg`])).map((e) => e.item.name);
    assert.deepEqual(
      jpgs,
      expected.filter((n) => n.endsWith(".jpg")),
    );
    // Braces with two static bases: one walk from the folder above both.
    assert.deepEqual(
      (await collect([`${dir}/{a/b,ab}/*.{jpg,png}`])).map((e) => e.item.name),
      ["a/b/c.jpg", "ab/c.png"],
    );
    // The same walk twice: the same items and cursors.
    assert.deepEqual(await collect([dir, `${dir}/a/*.jpg`]), await collect([dir, `${dir}/a/*.jpg`]));
  });

  it("reports what it skips and the symlinked folders it follows, as it goes", async () => {
    const dir = await scratchDir("input-stream-events");
    const outside = await scratchDir("input-stream-events-target");
    await writeFile(join(outside, "far.jpg"), "f");
    await mkdir(join(dir, "a"));
    await writeFile(join(dir, "a", "x.jpg"), "x");
    await writeFile(join(dir, "a", "logo.svg"), "<svg/>");
    await symlink("..", join(dir, "a", "loop"));
    await symlink(outside, join(dir, "ext"));
    const skipped: [string, string][] = [];
    const followed: string[] = [];
    const items = await collect([dir], { onSkipped: (s) => skipped.push([s.name, s.reason]), onFollowed: (f) => followed.push(f.name) });
    assert.deepEqual(
      items.map((e) => e.item.name),
      ["a/x.jpg", "ext/far.jpg"],
    );
    assert.deepEqual(skipped, [
      ["a/logo.svg", "not an image"],
      ["a/loop", "symlink loop"],
    ]);
    assert.deepEqual(followed, ["ext"]);
    assert.ok(
      items.every((e) => e.item.contentTag === undefined),
      "local files carry no content tag",
    );
    await assertResumesEverywhere([dir]);
    await assert.rejects(
      collect([join(dir, "missing")]),
      (err: unknown) => err instanceof ConfigError && err.message === `inputs: ${join(dir, "missing")}: no such file or folder`,
    );
  });
});

describe("streamInputs: resume", () => {
  it("resumes a folder, a glob and a single file after every cursor", async () => {
    const dir = await trickyTree("input-stream-resume");
    await assertResumesEverywhere([dir]);
    await assertResumesEverywhere([`${dir}/a/**/*.{jpg,txt}`]);
    await assertResumesEverywhere([join(dir, "a.jpg")]);
  });

  it("resumes CSV and JSONL manifests after every row", async () => {
    const dir = await scratchDir("input-stream-manifests");
    const jsonl = join(dir, "m.jsonl");
    await writeFile(jsonl, '{"path": "shoes/a.jpg", "boxes": [[1,2,30,40]], "prompts": ["on sand"]}\n\n{"path": "b.jpg"}\r\n{"path": "c.jpg"}\n  \n{"path": "b.jpg"}');
    const csv = join(dir, "m.csv");
    await writeFile(csv, 'path,boxes,prompts\nc.jpg,"[[0,0,10,10]]",studio white|beach\n\nd.jpg,,\n"e\nf.jpg",,x\ng.jpg,,\n');
    const rows = await collect([jsonl]);
    assert.deepEqual(
      rows.map((e) => e.item.name),
      ["shoes/a.jpg", "b.jpg", "c.jpg", "b.jpg"],
      "duplicates kept: enqueue removes them",
    );
    assert.deepEqual(rows[0]?.item, { path: join(dir, "shoes/a.jpg"), name: "shoes/a.jpg", boxes: [{ x0: 1, y0: 2, x1: 30, y1: 40 }], prompts: ["on sand"] });
    assert.deepEqual(
      (await collect([csv])).map((e) => [e.item.name, e.item.boxes, e.item.prompts]),
      [
        ["c.jpg", [{ x0: 0, y0: 0, x1: 10, y1: 10 }], ["studio white", "beach"]],
        ["d.jpg", undefined, undefined],
        ["e\nf.jpg", undefined, ["x"]],
        ["g.jpg", undefined, undefined],
      ],
    );
    await assertResumesEverywhere([jsonl]);
    await assertResumesEverywhere([csv]);
  });

  it("a malformed manifest row is the same one-line ConfigError as before, naming its row or line", async () => {
    const dir = await scratchDir("input-stream-bad-manifests");
    const cases: [string, string, RegExp][] = [
      ["bad.jsonl", '{"path": "a.jpg"}\n{"path": "b.jpg", "boxes": [[1,2,3]]}\n', /^[^:]*bad\.jsonl row 2 boxes\.0: Invalid input$/],
      ["json.jsonl", '{"path": "a.jpg"}\n\n{nope\n', /^inputs: .*json\.jsonl line 3: not valid JSON: [^\n]+$/],
      ["cols.csv", 'path,boxes,prompts\na.jpg,,\nb.jpg,"[[1,2,3,4]]",x,extra\n', /^inputs: .*cols\.csv line 3: Invalid Record Length: columns length is 3, got 4$/],
      ["quote.csv", 'path,boxes\na.jpg,x"y\n', /^inputs: .*quote\.csv line 2: Invalid Opening Quote: a quote is found on field …, value is …$/],
      ["boxes.csv", "path,boxes\na.jpg,[[1\n", /^inputs: .*boxes\.csv line 2 boxes: not valid JSON: /],
    ];
    for (const [name, text, message] of cases) {
      await writeFile(join(dir, name), text);
      let whole: string | undefined;
      assert.throws(
        () => discoverInputs([join(dir, name)]),
        (err: unknown) => err instanceof ConfigError && Boolean((whole = err.message)),
      );
      await assert.rejects(collect([join(dir, name)]), (err: unknown) => {
        assert.ok(err instanceof ConfigError, name);
        assert.match(err.message, message);
        assert.equal(err.message, whole, "the same message as the manifest read whole");
        return true;
      });
    }
  });

  it("resumes a list of specs of every kind, and refuses a cursor of another list", async () => {
    const dir = await trickyTree("input-stream-multi");
    await writeFile(join(dir, "m.jsonl"), '{"path": "a.jpg"}\n{"path": "z.jpg"}\n');
    server.createBucket("multi-bucket");
    for (const k of ["cat/1.jpg", "cat/2.png", "cat/3.txt", "cat/4.webp"]) server.putObject("multi-bucket", k, Buffer.from(k));
    const specs = [join(dir, "a"), join(dir, "m.jsonl"), "s3://multi-bucket/cat/", `${dir}/*.jpg`, join(dir, "a.jpg"), "s3://multi-bucket/cat/2.png"];
    await assertResumesEverywhere(specs, { pageSize: 2 });

    const [first] = await collect(specs);
    assert.ok(first);
    await assert.rejects(collect([join(dir, "a")], { after: first.cursor }), /input cursor is for another list of inputs/);
    await assert.rejects(collect(specs, { after: "garbage" }), /not an input cursor/);
    // The same specs spelled from another folder are the same list.
    const here = process.cwd();
    process.chdir(dir);
    try {
      const rest = await collect(["a", "./m.jsonl", ...specs.slice(2)], { after: first.cursor });
      assert.equal(rest.length, (await collect(specs)).length - 1);
    } finally {
      process.chdir(here);
    }
  });
});

describe("streamInputs: S3", () => {
  const keys = ["cat/a.jpg", "cat/b.png", "cat/c.txt", "cat/d/e.webp", "cat/.f.jpg", "cat/g.jpg", "cat/h.jpg", "cat/i.tif", "catalogue/j.jpg"];

  it("tags each object with its ETag and size from the listing, and resumes without listing earlier pages", async () => {
    server.createBucket("paged");
    for (const k of keys) server.putObject("paged", k, Buffer.from(`body of ${k}`));
    const uri = "s3://paged/cat";
    server.resetCounts();
    const all = await collect([uri], { pageSize: 2 });
    assert.deepEqual(
      all.map((e) => e.item.name),
      ["a.jpg", "b.png", "d/e.webp", "g.jpg", "h.jpg", "i.tif"],
    );
    const listed = keys.filter((k) => k.startsWith("cat/")).sort();
    assert.equal(server.count("ListObjectsV2"), Math.ceil(listed.length / 2));
    assert.equal(server.count("HeadObject"), 0);
    for (const { item } of all) {
      const head = await s3Client(aws).send(new HeadObjectCommand({ Bucket: "paged", Key: item.path.slice("s3://paged/".length) }));
      assert.equal(item.contentTag, `s3:${head.ETag}:${head.ContentLength}`, item.name);
    }

    for (const [i, { item, cursor }] of all.entries()) {
      server.resetCounts();
      const rest = await collect([uri], { pageSize: 2, after: cursor });
      assert.deepEqual(rest, all.slice(i + 1));
      const key = item.path.slice("s3://paged/".length);
      const left = listed.filter((k) => Buffer.compare(Buffer.from(k), Buffer.from(key)) > 0).length;
      assert.equal(server.count("ListObjectsV2"), Math.max(1, Math.ceil(left / 2)), `pages listed after ${key}`);
    }
  });

  it("a URI naming one object yields it once; a missing bucket is a ConfigError", async () => {
    const one = await collect(["s3://paged/cat/d/e.webp"]);
    assert.deepEqual(
      one.map((e) => e.item),
      [{ path: "s3://paged/cat/d/e.webp", name: "e.webp" }],
    );
    assert.deepEqual(await collect(["s3://paged/cat/d/e.webp"], { after: one[0]?.cursor }), []);
    await assert.rejects(collect(["s3://no-such-bucket/cat/"]), (err: unknown) => err instanceof ConfigError && /no-such-bucket.*not found/.test(err.message));
  });
});

/** A function that collects garbage now: node's own with --expose-gc, or V8's turned on here. */
function gcFunction(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  try {
    setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  } catch {
    return undefined;
  }
}

describe("streamInputs: large catalogs", () => {
  it("streams 50,000 files with flat memory: far less than the array of them", async () => {
    const dir = await scratchDir("input-stream-memory");
    const folders = 250;
    const perFolder = 200;
    try {
      for (let f = 0; f < folders; f++) {
        const sub = join(dir, `folder-${String(f).padStart(3, "0")}`);
        mkdirSync(sub);
        // One empty file per folder and hard links to it: as many entries, without 50,000 inodes (seconds on some disks).
        const first = join(sub, "image-000.jpg");
        writeFileSync(first, "");
        for (let i = 1; i < perFolder; i++) linkSync(first, join(sub, `image-${String(i).padStart(3, "0")}.jpg`));
      }
      const gc = gcFunction();
      const heap = () => {
        gc?.();
        return process.memoryUsage().heapUsed;
      };

      const before = heap();
      let peak = 0;
      let count = 0;
      let last: string | undefined;
      for await (const { item, cursor } of streamInputs([dir], aws)) {
        if (++count % 5_000 === 0) peak = Math.max(peak, heap() - before);
        last = cursor;
        assert.ok(item.name.endsWith(".jpg"));
      }
      assert.equal(count, folders * perFolder);
      const streaming = Math.max(peak, heap() - before);

      const base = heap();
      const array: StreamedInput[] = [];
      for await (const { item } of streamInputs([dir], aws)) array.push(item);
      const collected = heap() - base;
      assert.equal(array.length, count);
      assert.ok(collected > 4 * 1024 * 1024, `the array of ${count} inputs takes ${collected} bytes`);
      assert.ok(streaming < collected / 10, `streaming grew the heap by ${streaming} bytes, the array by ${collected} (gc: ${gc !== undefined})`);

      assert.deepEqual(await collect([dir], { after: last }), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("streams a 200,000-line JSONL manifest without overflowing the stack", async () => {
    const n = 200_000;
    const dir = await scratchDir("input-stream-large-manifest");
    const manifest = join(dir, "big.jsonl");
    await writeFile(manifest, Array.from({ length: n }, (_, i) => `{"path":"p/${i}.jpg"}`).join("\n"));
    let count = 0;
    let mid: string | undefined;
    let lastName: string | undefined;
    for await (const { item, cursor } of streamInputs([manifest], aws)) {
      if (++count === n - 1_000) mid = cursor;
      lastName = item.name;
    }
    assert.equal(count, n);
    assert.equal(lastName, `p/${n - 1}.jpg`);
    const rest = await collect([manifest], { after: mid });
    assert.equal(rest.length, 1_000);
    assert.equal(rest[0]?.item.name, `p/${n - 1_000}.jpg`);
  });
});
