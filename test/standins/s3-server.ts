/**
 * A small S3 REST server over node:http for tests: path-style requests (`/bucket/key`), objects in
 * memory. Enough of the API for maskfleet's S3 store and inputs, answered the way S3 answers:
 * ListObjectsV2 (prefix, delimiter, max-keys, continuation tokens, start-after, encoding-type=url),
 * Get/Put/Head/DeleteObject with Content-Type and x-amz-meta-* metadata, multipart uploads
 * (Create/UploadPart/Complete/Abort with the part checks S3 makes), CreateBucket/HeadBucket, and
 * S3's XML errors with their status codes. aws-chunked bodies (streaming signatures or trailing
 * checksums) are decoded; x-amz-content-sha256, Content-MD5 and x-amz-checksum-crc32 are checked
 * when sent. Signatures are not verified, but a request without an Authorization header is denied.
 *
 * Every request is counted by operation and key (`count`), and `failNext` makes chosen requests fail
 * (e.g. an UploadPart with a 500, a GetObject with AccessDenied).
 *
 * Each bucket keeps its keys in a sorted index (sorted chunks, S3's UTF-8 byte order) beside the
 * key -> object map, so a ListObjectsV2 page costs O(log N + page) however big the bucket, and
 * `seedObjects` puts a million objects in without HTTP in a second or two (benchmarks/scale-*.ts).
 *
 * (s3rver 3.7.1 was tried first: its ListObjectsV2 continuation tokens use a cipher that Node 17+
 * (OpenSSL 3) refuses, so any paginated listing is a 500 on Node 20.)
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { crc32 } from "node:zlib";
import { listenOnLoopback } from "./loopback.js";

export type S3Operation =
  | "ListObjectsV2"
  | "GetObject"
  | "PutObject"
  | "HeadObject"
  | "DeleteObject"
  | "CreateMultipartUpload"
  | "UploadPart"
  | "CompleteMultipartUpload"
  | "AbortMultipartUpload"
  | "CreateBucket"
  | "HeadBucket";

export interface S3Request {
  op: S3Operation;
  method: string;
  bucket: string;
  key: string;
}

export interface StoredObject {
  body: Buffer;
  contentType: string;
  metadata: Record<string, string>;
  etag: string;
  lastModified: Date;
}

export interface Fault {
  op: S3Operation;
  /** Only requests for this key (default: any key). */
  key?: string;
  status?: number;
  code?: string;
  /** How many matching requests fail (default 1). */
  times?: number;
}

export interface S3Server {
  /** http://127.0.0.1:PORT (or the host it was started on) */
  endpoint: string;
  /** Every request so far, in order. */
  requests: S3Request[];
  /** How many requests of `op` (for `key`, when given) the server has seen. */
  count(op: S3Operation, key?: string): number;
  resetCounts(): void;
  createBucket(name: string): void;
  /** Puts an object directly (not counted). */
  putObject(bucket: string, key: string, body: Buffer, contentType?: string): void;
  /**
   * Puts `count` objects directly (not counted, no HTTP): keys `keyOf(0)` .. `keyOf(count - 1)`,
   * Content-Type `contentType` (default image/jpeg), ETag the body's MD5 as S3 gives a single-part
   * upload. `body`: one Buffer for all (default: 64 bytes; the objects then share one record, so a
   * million cost about their keys' memory), or `(i) => Buffer` for contents that differ (a
   * producer that tells images apart by ETag needs that): called, and the MD5 taken, whenever the
   * object is read or listed, so it must give the same bytes for the same `i`; an object holds
   * only `i`. The bucket is created when missing. Returns how many keys were new.
   */
  seedObjects(bucket: string, count: number, keyOf: (i: number) => string, options?: SeedOptions): number;
  /** How many objects `bucket` holds (0 when there is no such bucket). */
  objectCount(bucket: string): number;
  getObject(bucket: string, key: string): StoredObject | undefined;
  /** Multipart uploads started and neither completed nor aborted. */
  pendingUploads(): { bucket: string; key: string; uploadId: string }[];
  failNext(fault: Fault): void;
  /** Drops the faults not used up. */
  clearFaults(): void;
  close(): Promise<void>;
}

export interface SeedOptions {
  body?: Buffer | ((i: number) => Buffer);
  contentType?: string;
}

interface Upload {
  bucket: string;
  key: string;
  contentType: string;
  metadata: Record<string, string>;
  parts: Map<number, { body: Buffer; etag: string }>;
}

class S3Failure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, string> = {},
  ) {
    super(message);
  }
}

const MIN_PART = 5 * 1024 * 1024;
const MAX_KEYS = 1000;

/** `host`: the address to listen on (default 127.0.0.1). */
export async function startS3Server(host?: string): Promise<S3Server> {
  const buckets = new Map<string, Bucket>();
  const uploads = new Map<string, Upload>();
  const requests: S3Request[] = [];
  const faults: (Fault & { left: number })[] = [];

  const bucketOf = (name: string): Bucket => {
    const b = buckets.get(name);
    if (!b) throw new S3Failure(404, "NoSuchBucket", "The specified bucket does not exist", { BucketName: name });
    return b;
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const q = url.searchParams;
    const path = url.pathname.slice(1);
    const slash = path.indexOf("/");
    const bucket = decodeURIComponent(slash < 0 ? path : path.slice(0, slash));
    const key = slash < 0 ? "" : decodeURIComponent(path.slice(slash + 1));
    const method = req.method ?? "GET";
    const op = operationOf(method, bucket, key, q);
    requests.push({ op, method, bucket, key });

    if (!req.headers.authorization) throw new S3Failure(403, "AccessDenied", "Access Denied");
    const fault = faults.find((f) => f.op === op && (f.key === undefined || f.key === key) && f.left > 0);
    if (fault) {
      fault.left--;
      await readBody(req); // the client sent it; S3 reads it before failing a part upload too
      throw new S3Failure(fault.status ?? 500, fault.code ?? "InternalError", "Injected failure");
    }

    switch (op) {
      case "CreateBucket":
        if (buckets.has(bucket)) throw new S3Failure(409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it.");
        await readBody(req);
        buckets.set(bucket, new Bucket());
        return send(res, 200, "", { Location: `/${bucket}` });
      case "HeadBucket":
        bucketOf(bucket);
        return send(res, 200, "");
      case "ListObjectsV2":
        return send(res, 200, listObjects(bucket, bucketOf(bucket), q), { "Content-Type": "application/xml" });
      case "PutObject": {
        const objects = bucketOf(bucket);
        if (req.headers["x-amz-copy-source"]) throw new S3Failure(501, "NotImplemented", "CopyObject is not implemented by this stand-in");
        const body = await readBody(req);
        const obj = newObject(body, req);
        objects.set(key, obj); // replaced only once the whole body is in: readers never see a part
        return send(res, 200, "", { ETag: obj.etag });
      }
      case "GetObject":
      case "HeadObject": {
        const obj = bucketOf(bucket).get(key);
        if (!obj) throw new S3Failure(404, "NoSuchKey", "The specified key does not exist.", { Key: key });
        if (req.headers.range) throw new S3Failure(501, "NotImplemented", "Range requests are not implemented by this stand-in");
        const headers: Record<string, string> = {
          "Content-Type": obj.contentType,
          "Content-Length": String(obj.body.length),
          ETag: obj.etag,
          "Last-Modified": obj.lastModified.toUTCString(),
          "Accept-Ranges": "bytes",
        };
        for (const [k, v] of Object.entries(obj.metadata)) headers[`x-amz-meta-${k}`] = v;
        res.writeHead(200, headers);
        res.end(op === "GetObject" ? obj.body : undefined);
        return;
      }
      case "DeleteObject":
        bucketOf(bucket).delete(key);
        return send(res, 204, "");
      case "CreateMultipartUpload": {
        bucketOf(bucket);
        await readBody(req);
        const uploadId = randomBytes(12).toString("hex");
        uploads.set(uploadId, { bucket, key, contentType: contentTypeOf(req), metadata: metadataOf(req), parts: new Map() });
        return sendXml(res, "InitiateMultipartUploadResult", `<Bucket>${esc(bucket)}</Bucket><Key>${esc(key)}</Key><UploadId>${uploadId}</UploadId>`);
      }
      case "UploadPart": {
        const upload = uploadOf(q.get("uploadId"), bucket, key);
        const n = Number(q.get("partNumber"));
        if (!Number.isInteger(n) || n < 1 || n > 10000) throw new S3Failure(400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive");
        const body = await readBody(req);
        const etag = `"${md5(body).toString("hex")}"`;
        upload.parts.set(n, { body, etag });
        return send(res, 200, "", { ETag: etag });
      }
      case "CompleteMultipartUpload": {
        const uploadId = q.get("uploadId");
        const upload = uploadOf(uploadId, bucket, key);
        const listed = parseCompleteBody((await readBody(req)).toString("utf8"));
        if (listed.length === 0) throw new S3Failure(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
        const bodies: Buffer[] = [];
        const digests: Buffer[] = [];
        listed.forEach((p, i) => {
          if (i > 0 && p.partNumber <= (listed[i - 1]?.partNumber ?? 0)) throw new S3Failure(400, "InvalidPartOrder", "The list of parts was not in ascending order.");
          const part = upload.parts.get(p.partNumber);
          if (!part || part.etag.replaceAll('"', "") !== p.etag.replaceAll('"', "")) {
            throw new S3Failure(400, "InvalidPart", "One or more of the specified parts could not be found.");
          }
          if (i < listed.length - 1 && part.body.length < MIN_PART)
            throw new S3Failure(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.");
          bodies.push(part.body);
          digests.push(md5(part.body));
        });
        const etag = `"${md5(Buffer.concat(digests)).toString("hex")}-${listed.length}"`;
        bucketOf(bucket).set(key, { body: Buffer.concat(bodies), contentType: upload.contentType, metadata: upload.metadata, etag, lastModified: new Date() });
        uploads.delete(uploadId ?? "");
        return sendXml(
          res,
          "CompleteMultipartUploadResult",
          `<Location>${esc(`/${bucket}/${key}`)}</Location><Bucket>${esc(bucket)}</Bucket><Key>${esc(key)}</Key><ETag>${esc(etag)}</ETag>`,
        );
      }
      case "AbortMultipartUpload": {
        const uploadId = q.get("uploadId");
        uploadOf(uploadId, bucket, key);
        uploads.delete(uploadId ?? "");
        return send(res, 204, "");
      }
    }
  }

  function uploadOf(uploadId: string | null, bucket: string, key: string): Upload {
    bucketOf(bucket);
    const upload = uploadId ? uploads.get(uploadId) : undefined;
    if (!upload || upload.bucket !== bucket || upload.key !== key) {
      throw new S3Failure(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.", {
        UploadId: uploadId ?? "",
      });
    }
    return upload;
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const f = err instanceof S3Failure ? err : new S3Failure(500, "InternalError", `We encountered an internal error: ${(err as Error).message}`);
      if (res.headersSent) return void res.destroy();
      const extra = Object.entries(f.extra)
        .map(([k, v]) => `<${k}>${esc(v)}</${k}>`)
        .join("");
      const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${f.code}</Code><Message>${esc(f.message)}</Message>${extra}<RequestId>${randomBytes(8).toString("hex")}</RequestId></Error>`;
      if (req.method === "HEAD") {
        res.writeHead(f.status).end();
      } else {
        res.writeHead(f.status, { "Content-Type": "application/xml", "Content-Length": Buffer.byteLength(xml) }).end(xml);
      }
      // A request failed before its body was read: drain it so the connection stays usable.
      if (!req.readableEnded) req.resume();
    });
  });
  const { endpoint, close } = await listenOnLoopback(server, host);
  return {
    endpoint,
    requests,
    count: (op, key) => requests.filter((r) => r.op === op && (key === undefined || r.key === key)).length,
    resetCounts: () => void requests.splice(0),
    createBucket: (name) => void (buckets.has(name) || buckets.set(name, new Bucket())),
    putObject: (bucket, key, body, contentType = "application/octet-stream") => {
      bucketOf(bucket).set(key, { body, contentType, metadata: {}, etag: `"${md5(body).toString("hex")}"`, lastModified: new Date() });
    },
    seedObjects: (bucket, count, keyOf, options = {}) => {
      if (!buckets.has(bucket)) buckets.set(bucket, new Bucket());
      const body = options.body ?? Buffer.alloc(64, 0x2a);
      const shared = { contentType: options.contentType ?? "image/jpeg", metadata: Object.freeze({}) as Record<string, string>, lastModified: new Date() };
      if (typeof body === "function") {
        const source = { ...shared, bodyOf: body };
        return bucketOf(bucket).seed(count, keyOf, (i) => new SeededObject(i, source));
      }
      const record: StoredObject = Object.freeze({ ...shared, body, etag: `"${md5(body).toString("hex")}"` });
      return bucketOf(bucket).seed(count, keyOf, () => record);
    },
    objectCount: (bucket) => buckets.get(bucket)?.size ?? 0,
    getObject: (bucket, key) => buckets.get(bucket)?.get(key),
    pendingUploads: () => [...uploads].map(([uploadId, u]) => ({ bucket: u.bucket, key: u.key, uploadId })),
    failNext: (fault) => void faults.push({ ...fault, left: fault.times ?? 1 }),
    clearFaults: () => void faults.splice(0),
    close,
  };
}

function operationOf(method: string, bucket: string, key: string, q: URLSearchParams): S3Operation {
  if (!bucket) throw new S3Failure(501, "NotImplemented", "ListBuckets is not implemented by this stand-in");
  if (!key) {
    if (method === "GET" && q.get("list-type") === "2") return "ListObjectsV2";
    if (method === "PUT" && [...q.keys()].every((k) => k === "x-id")) return "CreateBucket";
    if (method === "HEAD") return "HeadBucket";
    throw new S3Failure(501, "NotImplemented", `${method} /${bucket}?${q} is not implemented by this stand-in`);
  }
  if (method === "POST" && q.has("uploads")) return "CreateMultipartUpload";
  if (method === "PUT" && q.has("uploadId") && q.has("partNumber")) return "UploadPart";
  if (method === "POST" && q.has("uploadId")) return "CompleteMultipartUpload";
  if (method === "DELETE" && q.has("uploadId")) return "AbortMultipartUpload";
  const subresource = [...q.keys()].find((k) => k !== "x-id");
  if (subresource) throw new S3Failure(501, "NotImplemented", `?${subresource} is not implemented by this stand-in`);
  if (method === "PUT") return "PutObject";
  if (method === "GET") return "GetObject";
  if (method === "HEAD") return "HeadObject";
  if (method === "DELETE") return "DeleteObject";
  throw new S3Failure(405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
}

function listObjects(bucket: string, objects: Bucket, q: URLSearchParams): string {
  const prefix = q.get("prefix") ?? "";
  const delimiter = q.get("delimiter") ?? "";
  const urlEncode = q.get("encoding-type") === "url";
  const maxKeys = Math.min(MAX_KEYS, q.has("max-keys") ? Number(q.get("max-keys")) : MAX_KEYS);
  if (!Number.isInteger(maxKeys) || maxKeys < 0) throw new S3Failure(400, "InvalidArgument", "Provided max-keys not an integer or within integer range");
  const token = q.get("continuation-token");
  let after = q.get("start-after") ?? "";
  if (token !== null) {
    const decoded = Buffer.from(token, "base64url").toString("utf8");
    if (!decoded.startsWith("after:")) throw new S3Failure(400, "InvalidArgument", "The continuation token provided is incorrect");
    after = decoded.slice("after:".length);
  }
  const enc = (s: string) => esc(urlEncode ? encodeURIComponent(s).replaceAll("%2F", "/") : s);

  // S3 orders keys by their UTF-8 bytes; a run of keys sharing a common prefix counts as one entry.
  // The walk starts at the first key past both `after` and `prefix` and stops at the first key
  // outside the prefix; a common prefix is one step (a seek past all its keys), not one per key.
  const index = objects.keys;
  let at = index.seek((k) => compareKeys(k, prefix) < 0 || (after !== "" && compareKeys(k, after) <= 0));
  const contents: string[] = [];
  const commonPrefixes: string[] = [];
  let last = "";
  let truncated = false;
  for (let k = index.at(at); k !== undefined && k.startsWith(prefix); k = index.at(at)) {
    const cut = delimiter ? k.indexOf(delimiter, prefix.length) : -1;
    const common = cut >= 0 ? k.slice(0, cut + delimiter.length) : undefined;
    if (contents.length + commonPrefixes.length >= maxKeys) {
      truncated = true;
      break;
    }
    if (common !== undefined) {
      commonPrefixes.push(common);
      // Past every key in the group (they sort together: those below `common`, then those that
      // start with it, then the rest); the token names the group's last key.
      const end = index.seek((x) => compareKeys(x, common) < 0 || x.startsWith(common), at);
      last = index.at(index.before(end)) ?? k;
      at = end;
    } else {
      const o = objects.get(k) as StoredObject;
      contents.push(
        `<Contents><Key>${enc(k)}</Key><LastModified>${o.lastModified.toISOString()}</LastModified><ETag>${esc(o.etag)}</ETag><Size>${o.body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
      );
      last = k;
      at = index.after(at);
    }
  }
  const parts = [
    `<Name>${esc(bucket)}</Name>`,
    `<Prefix>${enc(prefix)}</Prefix>`,
    delimiter ? `<Delimiter>${enc(delimiter)}</Delimiter>` : "",
    `<MaxKeys>${maxKeys}</MaxKeys>`,
    `<KeyCount>${contents.length + commonPrefixes.length}</KeyCount>`,
    urlEncode ? "<EncodingType>url</EncodingType>" : "",
    `<IsTruncated>${truncated}</IsTruncated>`,
    token !== null ? `<ContinuationToken>${esc(token)}</ContinuationToken>` : "",
    truncated ? `<NextContinuationToken>${Buffer.from(`after:${last}`).toString("base64url")}</NextContinuationToken>` : "",
    q.has("start-after") ? `<StartAfter>${enc(q.get("start-after") ?? "")}</StartAfter>` : "",
    ...contents,
    ...commonPrefixes.map((p) => `<CommonPrefixes><Prefix>${enc(p)}</Prefix></CommonPrefixes>`),
  ];
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${parts.join("")}</ListBucketResult>`;
}

function parseCompleteBody(xml: string): { partNumber: number; etag: string }[] {
  return [...xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((m) => {
    const inner = m[1] ?? "";
    const n = /<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(inner)?.[1];
    const etag = /<ETag>([\s\S]*?)<\/ETag>/.exec(inner)?.[1];
    if (n === undefined || etag === undefined)
      throw new S3Failure(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
    return { partNumber: Number(n), etag: unesc(etag) };
  });
}

/** The request body as the client meant it: aws-chunked framing removed, sent checksums verified. */
async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  const sha = header(req, "x-amz-content-sha256");
  const chunked = (header(req, "content-encoding") ?? "").split(",").some((e) => e.trim() === "aws-chunked") || (sha?.startsWith("STREAMING-") ?? false);
  const trailers: Record<string, string> = {};
  const body = chunked ? decodeAwsChunked(raw, trailers) : raw;
  const decodedLength = header(req, "x-amz-decoded-content-length");
  if (chunked && decodedLength !== undefined && Number(decodedLength) !== body.length) {
    throw new S3Failure(400, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header");
  }
  if (sha && /^[0-9a-f]{64}$/.test(sha) && createHash("sha256").update(body).digest("hex") !== sha) {
    throw new S3Failure(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.");
  }
  const md5Header = header(req, "content-md5");
  if (md5Header && md5(body).toString("base64") !== md5Header) throw new S3Failure(400, "BadDigest", "The Content-MD5 you specified did not match what we received.");
  const crc = header(req, "x-amz-checksum-crc32") ?? trailers["x-amz-checksum-crc32"];
  if (crc) {
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc32(body));
    if (sum.toString("base64") !== crc) throw new S3Failure(400, "BadDigest", "The CRC32 you specified did not match the calculated checksum.");
  }
  return body;
}

/** `<hex size>[;chunk-signature=...]\r\n<data>\r\n` ... `0[;...]\r\n` then trailer lines and `\r\n`. */
function decodeAwsChunked(raw: Buffer, trailers: Record<string, string>): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  const malformed = () => new S3Failure(400, "InvalidRequest", "Malformed aws-chunked body");
  for (;;) {
    const eol = raw.indexOf("\r\n", at);
    if (eol < 0) throw malformed();
    const size = parseInt(raw.subarray(at, eol).toString("latin1").split(";")[0] ?? "", 16);
    if (!Number.isFinite(size) || size < 0) throw malformed();
    at = eol + 2;
    if (size === 0) break;
    if (at + size + 2 > raw.length || raw.subarray(at + size, at + size + 2).toString("latin1") !== "\r\n") throw malformed();
    out.push(raw.subarray(at, at + size));
    at += size + 2;
  }
  for (const line of raw.subarray(at).toString("latin1").split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return Buffer.concat(out);
}

function newObject(body: Buffer, req: IncomingMessage): StoredObject {
  return { body, contentType: contentTypeOf(req), metadata: metadataOf(req), etag: `"${md5(body).toString("hex")}"`, lastModified: new Date() };
}

function contentTypeOf(req: IncomingMessage): string {
  return header(req, "content-type") ?? "binary/octet-stream";
}

function metadataOf(req: IncomingMessage): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (k.startsWith("x-amz-meta-") && v !== undefined) meta[k.slice("x-amz-meta-".length)] = Array.isArray(v) ? v.join(",") : v;
  }
  return meta;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function md5(b: Buffer): Buffer {
  return createHash("md5").update(b).digest();
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Length": Buffer.byteLength(body), ...headers }).end(body);
}

function sendXml(res: ServerResponse, root: string, inner: string): void {
  send(res, 200, `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${inner}</${root}>`, { "Content-Type": "application/xml" });
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&${({ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos" } as Record<string, string>)[c]};`);
}

function unesc(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ({ amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" })[e] ?? "");
}

/**
 * S3's key order, the order of the keys' UTF-8 bytes (= Unicode code point order), without encoding
 * them: UTF-16 code units compare the same way except that surrogates (U+10000 and up) must sort
 * after U+E000..U+FFFF, so the first differing units are moved into code point order.
 */
function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === n) return a.length - b.length;
  return codePointRank(a.charCodeAt(i)) - codePointRank(b.charCodeAt(i));
}

function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

/** Chunks of at most this many keys; split in two when full. */
const CHUNK = 1024;

/**
 * The keys of a bucket in S3 order: sorted chunks (a flat sorted array would move a million
 * pointers on every insert). A position is one number, chunk * CHUNK_SPAN + index within it.
 */
class SortedKeys {
  private chunks: string[][] = [];

  /** Inserts a key not already present. */
  insert(key: string): void {
    if (this.chunks.length === 0) {
      this.chunks.push([key]);
      return;
    }
    const ci = this.chunkFor(key);
    const chunk = this.chunks[ci] as string[];
    chunk.splice(lowerBound(chunk, key), 0, key);
    if (chunk.length > CHUNK) this.chunks.splice(ci + 1, 0, chunk.splice(chunk.length >> 1));
  }

  /** Removes a key that is present. */
  remove(key: string): void {
    if (this.chunks.length === 0) return;
    const ci = this.chunkFor(key);
    const chunk = this.chunks[ci] as string[];
    const i = lowerBound(chunk, key);
    if (chunk[i] !== key) return;
    chunk.splice(i, 1);
    if (chunk.length === 0) this.chunks.splice(ci, 1);
  }

  /** Adds keys not present and not repeated; appended as they are when already in order past the last key. */
  addMany(keys: string[]): void {
    if (keys.length === 0) return;
    let ordered = true;
    for (let i = 1; i < keys.length && ordered; i++) ordered = compareKeys(keys[i - 1] as string, keys[i] as string) < 0;
    const lastChunk = this.chunks.at(-1);
    const tail = lastChunk?.at(-1);
    if (ordered && (tail === undefined || compareKeys(tail, keys[0] as string) < 0)) {
      let from = 0;
      if (lastChunk && lastChunk.length < CHUNK) {
        from = Math.min(keys.length, CHUNK - lastChunk.length);
        for (let i = 0; i < from; i++) lastChunk.push(keys[i] as string);
      }
      for (let i = from; i < keys.length; i += CHUNK) this.chunks.push(keys.slice(i, i + CHUNK));
      return;
    }
    const all = this.chunks.flat();
    for (const k of keys) all.push(k);
    all.sort(compareKeys);
    this.chunks = [];
    for (let i = 0; i < all.length; i += CHUNK) this.chunks.push(all.slice(i, i + CHUNK));
  }

  /**
   * The position of the first key for which `below` is false; `below` must hold for a leading run
   * of keys and for none after it. `from`: a position known to be at or before the answer.
   */
  seek(below: (key: string) => boolean, from = 0): number {
    let lo = Math.floor(from / CHUNK_SPAN);
    let hi = this.chunks.length;
    // The first chunk whose last key is not below.
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (below((this.chunks[mid] as string[]).at(-1) as string)) lo = mid + 1;
      else hi = mid;
    }
    if (lo >= this.chunks.length) return this.chunks.length * CHUNK_SPAN;
    const chunk = this.chunks[lo] as string[];
    let a = 0;
    let b = chunk.length - 1;
    while (a < b) {
      const mid = (a + b) >> 1;
      if (below(chunk[mid] as string)) a = mid + 1;
      else b = mid;
    }
    return lo * CHUNK_SPAN + a;
  }

  at(pos: number): string | undefined {
    return this.chunks[Math.floor(pos / CHUNK_SPAN)]?.[pos % CHUNK_SPAN];
  }

  after(pos: number): number {
    const ci = Math.floor(pos / CHUNK_SPAN);
    const i = pos % CHUNK_SPAN;
    return i + 1 < (this.chunks[ci]?.length ?? 0) ? pos + 1 : (ci + 1) * CHUNK_SPAN;
  }

  /** The position before `pos` (which must not be the first). */
  before(pos: number): number {
    const ci = Math.floor(pos / CHUNK_SPAN);
    const i = pos % CHUNK_SPAN;
    if (i > 0) return pos - 1;
    return (ci - 1) * CHUNK_SPAN + ((this.chunks[ci - 1]?.length ?? 1) - 1);
  }

  private chunkFor(key: string): number {
    // The last chunk whose first key is <= key (the first chunk when none is).
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (compareKeys((this.chunks[mid] as string[])[0] as string, key) <= 0) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

/** Room for a chunk's split halves: positions stay one number. */
const CHUNK_SPAN = 2 * CHUNK;

function lowerBound(sorted: string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareKeys(sorted[mid] as string, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A bucket's objects by key, and the same keys in S3 order. */
class Bucket {
  private readonly objects = new Map<string, StoredObject>();
  readonly keys = new SortedKeys();

  get size(): number {
    return this.objects.size;
  }

  get(key: string): StoredObject | undefined {
    return this.objects.get(key);
  }

  set(key: string, obj: StoredObject): void {
    if (!this.objects.has(key)) this.keys.insert(key);
    this.objects.set(key, obj);
  }

  delete(key: string): void {
    if (this.objects.delete(key)) this.keys.remove(key);
  }

  /** `count` keys from `keyOf` holding `objectOf(i)`; returns how many were new. */
  seed(count: number, keyOf: (i: number) => string, objectOf: (i: number) => StoredObject): number {
    const added: string[] = [];
    for (let i = 0; i < count; i++) {
      const key = keyOf(i);
      if (!this.objects.has(key)) added.push(key);
      this.objects.set(key, objectOf(i));
    }
    this.keys.addMany(added);
    return added.length;
  }
}

/** A seeded object whose body comes from its index: made when read, so a million cost a few bytes each. */
class SeededObject implements StoredObject {
  constructor(
    private readonly i: number,
    private readonly shared: { bodyOf: (i: number) => Buffer; contentType: string; metadata: Record<string, string>; lastModified: Date },
  ) {}

  get body(): Buffer {
    return this.shared.bodyOf(this.i);
  }

  get etag(): string {
    return `"${md5(this.body).toString("hex")}"`;
  }

  get contentType(): string {
    return this.shared.contentType;
  }

  get metadata(): Record<string, string> {
    return this.shared.metadata;
  }

  get lastModified(): Date {
    return this.shared.lastModified;
  }
}
