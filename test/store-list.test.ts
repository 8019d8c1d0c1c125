/**
 * Store.list and Store.head, the same contract for every store: the local folder store and the
 * S3 store (against the local S3 server), each given the same objects.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import type { AwsSettings } from "../src/runtime/aws.js";
import { openStore, StoreError } from "../src/storage/index.js";
import { readInput } from "../src/storage/input.js";
import { discoverStoreInputs } from "../src/producer/discover-store.js";
import type { Store, StoreEntry } from "../src/storage/store.js";
import { scratchDir } from "./helpers.js";
import { startS3Server, type S3Server } from "./standins/s3-server.js";

process.env.AWS_ACCESS_KEY_ID = "AKIAMASKFLEETTEST";
process.env.AWS_SECRET_ACCESS_KEY = "maskfleet-test-secret";
delete process.env.AWS_SESSION_TOKEN;
delete process.env.AWS_PROFILE;

// Names whose byte order differs from a naive path sort: "a/" (0x2f) sorts before "a0" (0x30) and "a-" (0x2d) before both.
const keys = ["cat/a-x.jpg", "cat/a/b.png", "cat/a/c/d.jpg", "cat/a0.jpg", "cat/B.jpg", "cat/é.webp", "cat/z.jpg", "other/y.jpg"];
const bodies = new Map(keys.map((k, i) => [k, randomBytes(100 + i * 37)]));
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

let server: S3Server;
let aws: AwsSettings;

before(async () => {
  server = await startS3Server();
  aws = { region: "us-east-1", endpoints: { s3: server.endpoint } };
  server.createBucket("list-bucket");
});
after(() => server.close());

async function collect(list: AsyncGenerator<StoreEntry>): Promise<StoreEntry[]> {
  const out: StoreEntry[] = [];
  for await (const e of list) out.push(e);
  return out;
}

async function stores(): Promise<[string, Store][]> {
  const dir = await scratchDir("store-list");
  const local = openStore(join(dir, "root"));
  const s3 = openStore("s3://list-bucket/root/", aws);
  for (const store of [local, s3]) for (const [k, b] of bodies) await store.write(k, b);
  return [
    ["local", local],
    ["s3", s3],
  ];
}

describe("Store.list and Store.head", () => {
  it("list gives every object under a prefix in byte order, with sizes, and resumes after any key", async () => {
    for (const [kind, store] of await stores()) {
      const under = keys.filter((k) => k.startsWith("cat/")).sort(byteOrder);
      const listed = await collect(store.list("cat/", { pageSize: 2 }));
      assert.deepEqual(
        listed.map((e) => e.key),
        under,
        kind,
      );
      for (const e of listed) assert.equal(e.size, bodies.get(e.key)?.length, `${kind} ${e.key}`);
      assert.deepEqual(
        (await collect(store.list(""))).map((e) => e.key),
        [...keys].sort(byteOrder),
        `${kind}: the whole store`,
      );
      for (const [i, key] of under.entries()) {
        const rest = await collect(store.list("cat/", { startAfter: key, pageSize: 3 }));
        assert.deepEqual(
          rest.map((e) => e.key),
          under.slice(i + 1),
          `${kind}: after ${key}`,
        );
      }
      assert.deepEqual(await collect(store.list("nothing-here/")), [], kind);
    }
  });

  it("head gives size and content tag without the body, undefined for a missing key", async () => {
    for (const [kind, store] of await stores()) {
      const key = "cat/a/c/d.jpg";
      const found = await store.head(key);
      assert.equal(found?.key, key, kind);
      assert.equal(found?.size, bodies.get(key)?.length, kind);
      assert.equal(await store.head("cat/missing.jpg"), undefined, kind);
      assert.equal(await store.exists(key), true, kind);
      assert.equal(await store.exists("cat/a"), false, `${kind}: a folder is not an object`);
      if (kind === "s3") {
        // The tag the listing gives is the one head gives, and it changes with the content.
        const listed = (await collect(store.list("cat/a/c/"))).find((e) => e.key === key);
        assert.match(found?.contentTag ?? "", /^s3:".+":\d+$/);
        assert.equal(listed?.contentTag, found?.contentTag);
        await store.write(key, randomBytes(50));
        assert.notEqual((await store.head(key))?.contentTag, found?.contentTag);
      }
    }
  });

  it("the local store does not follow a symlinked folder (no loop); a missing bucket is a StoreError", async () => {
    const dir = await scratchDir("store-list-loop");
    await mkdir(join(dir, "sub"), { recursive: true });
    const store = openStore(dir);
    await store.write("sub/a.jpg", Buffer.from("a"));
    await symlink(dir, join(dir, "sub", "loop"));
    assert.deepEqual(
      (await collect(store.list(""))).map((e) => e.key),
      ["sub/a.jpg"],
    );
    await assert.rejects(collect(openStore("s3://no-such-bucket/x/", aws).list("")), (err: Error) => {
      assert.ok(err instanceof StoreError);
      assert.equal(err.miss, "no such bucket");
      return true;
    });
  });

  it("an S3 key with an empty segment is listed and read as itself, not as its neighbour without one", async () => {
    const store = openStore("s3://list-bucket/", aws);
    const [doubled, single] = [randomBytes(64), randomBytes(80)];
    await store.write("odd/catalog//x.jpg", doubled);
    await store.write("odd/catalog/x.jpg", single);
    const items = await discoverStoreInputs("s3://list-bucket/odd/catalog/", aws);
    assert.deepEqual(
      items.map((i) => i.path),
      ["s3://list-bucket/odd/catalog//x.jpg", "s3://list-bucket/odd/catalog/x.jpg"],
    );
    assert.ok((await readInput("s3://list-bucket/odd/catalog//x.jpg", "x.jpg", aws)).equals(doubled));
    assert.ok((await readInput("s3://list-bucket/odd/catalog/x.jpg", "x.jpg", aws)).equals(single));
  });
});
