import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Readable } from "node:stream";
import { discoverStoreInputs as discoverS3Inputs } from "../src/producer/discover-store.js";
import type { AwsSettings } from "../src/runtime/aws.js";
import { ConfigError, InputError } from "../src/runtime/errors.js";
import { readInput } from "../src/storage/input.js";
import { openStore } from "../src/storage/index.js";
import { LocalStore } from "../src/storage/local.js";
import { parseS3Uri, s3Client, S3Store } from "../src/storage/s3.js";
import type { Store } from "../src/storage/store.js";
import { repoRoot, scratchDir } from "./helpers.js";
import { startS3Server, type S3Server } from "./standins/s3-server.js";

// Dummy credentials for the SDK's default chain: requests go to the stand-in on 127.0.0.1 only.
process.env.AWS_ACCESS_KEY_ID = "AKIAMASKFLEETTEST";
process.env.AWS_SECRET_ACCESS_KEY = "maskfleet-test-secret";
delete process.env.AWS_SESSION_TOKEN;
delete process.env.AWS_PROFILE;

const MiB = 1024 * 1024;
const version = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;

let server: S3Server;
let aws: AwsSettings;

before(async () => {
  server = await startS3Server();
  aws = { region: "us-east-1", endpoints: { s3: server.endpoint } };
  server.createBucket("in-bucket");
  server.createBucket("out-bucket");
});
after(() => server.close());

function head(bucket: string, key: string) {
  return s3Client(aws).send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
}

describe("discoverS3Inputs + readInput", () => {
  it("lists every image under the prefix across pages, sorted, and reads each back byte-exact", async () => {
    const images = ["catalog/b.jpg", "catalog/a.PNG", "catalog/shoes/c.webp", "catalog/shoes/d.jpeg", "catalog/z/e.tif", "catalog/f g.jpg", "catalog/h.jpg"];
    const bodies = new Map(images.map((k) => [k, randomBytes(1000 + Math.floor(Math.random() * 5000))]));
    for (const [k, b] of bodies) server.putObject("in-bucket", k, b, "image/jpeg");
    for (const k of ["catalog/notes.txt", "catalog/.hidden.jpg", "catalog/.thumbs/x.jpg", "catalog/", "catalogue/other.jpg", "elsewhere/y.jpg"]) {
      server.putObject("in-bucket", k, Buffer.from("x"));
    }
    server.resetCounts();

    const items = await discoverS3Inputs("s3://in-bucket/catalog", aws, { pageSize: 2 });
    assert.deepEqual(
      items.map((i) => i.name),
      ["a.PNG", "b.jpg", "f g.jpg", "h.jpg", "shoes/c.webp", "shoes/d.jpeg", "z/e.tif"],
    );
    assert.ok(items.every((i) => i.path === `s3://in-bucket/catalog/${i.name}`));
    // 12 keys under "catalog/" in pages of 2: all 6 pages were asked for.
    assert.equal(server.count("ListObjectsV2"), 6);
    assert.ok(server.requests.every((r) => r.bucket === "in-bucket"));

    for (const item of items) {
      const bytes = await readInput(item.path, item.name, aws);
      assert.ok(bytes.equals(bodies.get(`catalog/${item.name}`) as Buffer), item.name);
    }
    assert.equal(server.count("GetObject"), items.length);

    // One page of 1000 by default; the same list.
    server.resetCounts();
    assert.deepEqual(await discoverS3Inputs("s3://in-bucket/catalog/", aws), items);
    assert.equal(server.count("ListObjectsV2"), 1);
  });

  it("takes a URI naming one image as that image, and says which bucket is missing", async () => {
    assert.deepEqual(await discoverS3Inputs("s3://in-bucket/catalog/shoes/c.webp", aws), [{ path: "s3://in-bucket/catalog/shoes/c.webp", name: "c.webp" }]);
    await assert.rejects(discoverS3Inputs("s3://no-such-bucket/catalog/", aws), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /^inputs: .*no-such-bucket.*not found/);
      return true;
    });
    assert.deepEqual(await discoverS3Inputs("s3://in-bucket/empty-prefix/", aws), []);
  });

  it("readInput: a missing key is an InputError naming the URI, AccessDenied is 'permission denied'", async () => {
    const uri = "s3://in-bucket/catalog/missing.jpg";
    await assert.rejects(readInput(uri, "missing.jpg", aws), (err: Error) => {
      assert.ok(err instanceof InputError);
      assert.equal(err.message, `missing.jpg: not found (${uri})`);
      return true;
    });
    server.putObject("in-bucket", "catalog/locked.jpg", Buffer.from("secret"));
    server.failNext({ op: "GetObject", key: "catalog/locked.jpg", status: 403, code: "AccessDenied" });
    await assert.rejects(readInput("s3://in-bucket/catalog/locked.jpg", "locked.jpg", aws), (err: Error) => {
      assert.ok(err instanceof InputError);
      assert.match(err.message, /^locked\.jpg: permission denied/);
      return true;
    });
    await assert.rejects(readInput("s3://no-such-bucket/a.jpg", "a.jpg", aws), InputError);
    // Local paths still read as before.
    const dir = await scratchDir("s3-local-input");
    await assert.rejects(readInput(join(dir, "nope.jpg"), "nope.jpg"), /nope\.jpg: file not found/);
  });
});

describe("S3Store", () => {
  it("normalises the root and locates keys under it", () => {
    const a = new S3Store("s3://out-bucket/bg", aws);
    assert.equal(a.root, "s3://out-bucket/bg/");
    assert.equal(a.locate("img/mask.png"), "s3://out-bucket/bg/img/mask.png");
    assert.equal(new S3Store("s3://out-bucket/bg///", aws).root, "s3://out-bucket/bg/");
    const b = new S3Store("s3://out-bucket", aws);
    assert.equal(b.root, "s3://out-bucket/");
    assert.equal(b.locate("x.json"), "s3://out-bucket/x.json");
    assert.throws(() => a.locate("../escape.png"), /not a valid key/);
    assert.throws(() => a.locate("/abs.png"), /not a valid key/);
  });

  it("writes with content type and maskfleet metadata, reads back, and knows what exists", async () => {
    const store = new S3Store("s3://out-bucket/bg/", aws);
    server.resetCounts();
    const png = randomBytes(3000);
    const json = Buffer.from('{"ok":true}');
    await store.write("run1/a/result.png", png);
    await store.write("run1/a/manifest.json", json);
    await store.write("run1/a/blob", Buffer.from("raw"), "text/plain");
    assert.equal(server.count("PutObject"), 3);
    assert.equal(server.count("CreateMultipartUpload"), 0);

    const h = await head("out-bucket", "bg/run1/a/result.png");
    assert.equal(h.ContentType, "image/png");
    assert.equal(h.ContentLength, png.length);
    assert.deepEqual(h.Metadata, { "maskfleet-version": version });
    assert.equal((await head("out-bucket", "bg/run1/a/manifest.json")).ContentType, "application/json");
    assert.equal((await head("out-bucket", "bg/run1/a/blob")).ContentType, "text/plain");

    assert.ok((await store.read("run1/a/result.png")).equals(png));
    assert.ok(server.getObject("out-bucket", "bg/run1/a/manifest.json")?.body.equals(json));

    assert.equal(await store.exists("run1/a/result.png"), true);
    assert.equal(await store.exists("run1/a/missing.png"), false);
    assert.equal(await store.exists("run1/a"), false);
    await assert.rejects(store.read("run1/a/missing.png"), /s3:\/\/out-bucket\/bg\/run1\/a\/missing\.png: not found/);
  });

  it("uploads a body over the threshold in parts, byte-exact, with content type and metadata", async () => {
    const store = new S3Store("s3://out-bucket/big/", aws, { multipartThreshold: 5 * MiB, partSize: 5 * MiB });
    const body = randomBytes(11 * MiB + 123);
    server.resetCounts();
    await store.write("sheet.jpg", body);
    assert.equal(server.count("PutObject"), 0);
    assert.equal(server.count("CreateMultipartUpload", "big/sheet.jpg"), 1);
    assert.equal(server.count("UploadPart", "big/sheet.jpg"), 3);
    assert.equal(server.count("CompleteMultipartUpload", "big/sheet.jpg"), 1);
    assert.equal(server.count("AbortMultipartUpload"), 0);
    assert.deepEqual(server.pendingUploads(), []);

    assert.ok(server.getObject("out-bucket", "big/sheet.jpg")?.body.equals(body));
    assert.ok((await store.read("sheet.jpg")).equals(body));
    const h = await head("out-bucket", "big/sheet.jpg");
    assert.equal(h.ContentType, "image/jpeg");
    assert.deepEqual(h.Metadata, { "maskfleet-version": version });
    assert.match(h.ETag ?? "", /-3"$/);

    // At the threshold exactly: one PutObject.
    server.resetCounts();
    await store.write("edge.bin", randomBytes(5 * MiB));
    assert.equal(server.count("PutObject", "big/edge.bin"), 1);
    assert.equal(server.count("CreateMultipartUpload"), 0);
  });

  it("a failed part aborts the upload: no object, no upload left, the old object intact", async () => {
    const store = new S3Store("s3://out-bucket/big/", aws, { multipartThreshold: 5 * MiB, partSize: 5 * MiB, concurrency: 1 });
    const old = Buffer.from("the previous contact sheet");
    server.putObject("out-bucket", "big/kept.jpg", old, "image/jpeg");
    server.resetCounts();
    // More failures than the SDK's retries: the part never goes up.
    server.failNext({ op: "UploadPart", status: 500, code: "InternalError", times: 10 });
    await assert.rejects(store.write("fresh.jpg", randomBytes(6 * MiB)), /Injected failure/);
    assert.equal(server.getObject("out-bucket", "big/fresh.jpg"), undefined);
    assert.equal(await store.exists("fresh.jpg"), false);
    assert.equal(server.count("AbortMultipartUpload", "big/fresh.jpg"), 1);
    assert.equal(server.count("CompleteMultipartUpload"), 0);
    assert.deepEqual(server.pendingUploads(), []);
    server.clearFaults();

    server.failNext({ op: "UploadPart", key: "big/kept.jpg", status: 403, code: "AccessDenied" });
    await assert.rejects(store.write("kept.jpg", randomBytes(12 * MiB)));
    assert.ok(server.getObject("out-bucket", "big/kept.jpg")?.body.equals(old));
    assert.equal(server.count("AbortMultipartUpload", "big/kept.jpg"), 1);
    // With one part at a time, the failure stopped the upload: no part after the failed first one.
    assert.equal(server.count("UploadPart", "big/kept.jpg"), 1);
    assert.deepEqual(server.pendingUploads(), []);
  });

  it("writing the same outputs again, checking exists first, makes no new PUT", async () => {
    const store = openStore("s3://out-bucket/again/", aws);
    const outputs: [string, Buffer][] = [
      ["x/mask.png", randomBytes(500)],
      ["x/result-0.png", randomBytes(600)],
      ["x/manifest.json", Buffer.from("{}")],
    ];
    const writeMissing = async (s: Store) => {
      for (const [k, b] of outputs) if (!(await s.exists(k))) await s.write(k, b);
    };
    server.resetCounts();
    await writeMissing(store);
    assert.equal(server.count("PutObject"), 3);
    await writeMissing(store);
    assert.equal(server.count("PutObject"), 3);
    assert.equal(server.count("HeadObject"), 6);
    await writeMissing(openStore("s3://out-bucket/again", aws));
    assert.equal(server.count("PutObject"), 3);
  });
});

describe("S3 plumbing", () => {
  it("parseS3Uri splits bucket and key and refuses what is not an S3 URI", () => {
    assert.deepEqual(parseS3Uri("s3://in-bucket/catalog/a b.jpg"), { bucket: "in-bucket", key: "catalog/a b.jpg" });
    assert.deepEqual(parseS3Uri("s3://in-bucket"), { bucket: "in-bucket", key: "" });
    assert.deepEqual(parseS3Uri("s3://my.bucket-1/"), { bucket: "my.bucket-1", key: "" });
    for (const bad of [
      "https://in-bucket/x",
      "s3:/in-bucket/x",
      "s3://",
      "s3:///key",
      "s3://Bad_Bucket/x",
      "s3://ab/x",
      "s3://-bucket/x",
      "s3://a..b/x",
      "s3://in-bucket//x",
      "/tmp/x",
    ]) {
      assert.throws(
        () => parseS3Uri(bad, "detector"),
        (err: Error) => err instanceof ConfigError && err.key === "detector" && err.message.includes(bad),
        bad,
      );
    }
  });

  it("openStore picks the store by root; s3Client is one per settings", async () => {
    assert.ok(openStore("s3://out-bucket/bg/") instanceof S3Store);
    assert.ok(openStore("s3://out-bucket/bg/", aws) instanceof S3Store);
    const dir = await scratchDir("s3-open-store");
    assert.ok(openStore(dir) instanceof LocalStore);
    assert.throws(
      () => openStore("gs://bucket/x"),
      (err: Error) => err instanceof ConfigError && err.key === "out" && /gs:\/\//.test(err.message),
    );
    assert.throws(
      () => openStore("s3://NOPE/x"),
      (err: Error) => err instanceof ConfigError && err.key === "out",
    );

    const c = s3Client({ region: "us-east-1", endpoints: { s3: server.endpoint } });
    assert.ok(c instanceof S3Client);
    assert.equal(s3Client({ endpoints: { s3: server.endpoint }, region: "us-east-1" }), c);
    assert.notEqual(s3Client({ region: "eu-west-1", endpoints: { s3: server.endpoint } }), c);
    assert.equal(c.config.forcePathStyle, true);
  });

  it("the stand-in denies unsigned requests and answers S3's errors", async () => {
    const res = await fetch(`${server.endpoint}/in-bucket/catalog/b.jpg`);
    assert.equal(res.status, 403);
    assert.match(await res.text(), /<Code>AccessDenied<\/Code>/);
    const auth = { authorization: "AWS4-HMAC-SHA256 Credential=x" };
    const missing = await fetch(`${server.endpoint}/in-bucket/nope.jpg`, { headers: auth });
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /<Code>NoSuchKey<\/Code>/);
    const noBucket = await fetch(`${server.endpoint}/no-such-bucket/x.jpg`, { headers: auth });
    assert.equal(noBucket.status, 404);
    assert.match(await noBucket.text(), /<Code>NoSuchBucket<\/Code>/);
  });

  it("the stand-in decodes aws-chunked bodies and checks the checksums the SDK sends", async () => {
    const client = s3Client(aws);
    const body = randomBytes(70_000);
    // A stream body goes as aws-chunked with a trailing CRC32; a Buffer with headers.
    await client.send(
      new PutObjectCommand({ Bucket: "in-bucket", Key: "chunked.bin", Body: Readable.from([body.subarray(0, 30_000), body.subarray(30_000)]), ContentLength: body.length }),
    );
    assert.ok(server.getObject("in-bucket", "chunked.bin")?.body.equals(body));
    await assert.rejects(
      client.send(new PutObjectCommand({ Bucket: "in-bucket", Key: "bad.bin", Body: Buffer.from("abc"), ChecksumCRC32: "AAAAAA==" })),
      (err: Error) => err.name === "BadDigest",
    );
    assert.equal(server.getObject("in-bucket", "bad.bin"), undefined);
  });
});
