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
  getObject(bucket: string, key: string): StoredObject | undefined;
  /** Multipart uploads started and neither completed nor aborted. */
  pendingUploads(): { bucket: string; key: string; uploadId: string }[];
  failNext(fault: Fault): void;
  /** Drops the faults not used up. */
  clearFaults(): void;
  close(): Promise<void>;
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
  const buckets = new Map<string, Map<string, StoredObject>>();
  const uploads = new Map<string, Upload>();
  const requests: S3Request[] = [];
  const faults: (Fault & { left: number })[] = [];

  const bucketOf = (name: string): Map<string, StoredObject> => {
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
        buckets.set(bucket, new Map());
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
          if (i < listed.length - 1 && part.body.length < MIN_PART) throw new S3Failure(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.");
          bodies.push(part.body);
          digests.push(md5(part.body));
        });
        const etag = `"${md5(Buffer.concat(digests)).toString("hex")}-${listed.length}"`;
        bucketOf(bucket).set(key, { body: Buffer.concat(bodies), contentType: upload.contentType, metadata: upload.metadata, etag, lastModified: new Date() });
        uploads.delete(uploadId ?? "");
        return sendXml(res, "CompleteMultipartUploadResult", `<Location>${esc(`/${bucket}/${key}`)}</Location><Bucket>${esc(bucket)}</Bucket><Key>${esc(key)}</Key><ETag>${esc(etag)}</ETag>`);
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
      throw new S3Failure(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.", { UploadId: uploadId ?? "" });
    }
    return upload;
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const f = err instanceof S3Failure ? err : new S3Failure(500, "InternalError", `We encountered an internal error: ${(err as Error).message}`);
      if (res.headersSent) return void res.destroy();
      const extra = Object.entries(f.extra).map(([k, v]) => `<${k}>${esc(v)}</${k}>`).join("");
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
    createBucket: (name) => void (buckets.has(name) || buckets.set(name, new Map())),
    putObject: (bucket, key, body, contentType = "application/octet-stream") => {
      bucketOf(bucket).set(key, { body, contentType, metadata: {}, etag: `"${md5(body).toString("hex")}"`, lastModified: new Date() });
    },
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

function listObjects(bucket: string, objects: Map<string, StoredObject>, q: URLSearchParams): string {
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
  const keys = [...objects.keys()].filter((k) => k.startsWith(prefix)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const contents: string[] = [];
  const commonPrefixes: string[] = [];
  let last = "";
  let truncated = false;
  for (const k of keys) {
    if (after && Buffer.compare(Buffer.from(k), Buffer.from(after)) <= 0) continue;
    const cut = delimiter ? k.indexOf(delimiter, prefix.length) : -1;
    const common = cut >= 0 ? k.slice(0, cut + delimiter.length) : undefined;
    if (common !== undefined && commonPrefixes.at(-1) === common) {
      last = k;
      continue;
    }
    if (contents.length + commonPrefixes.length >= maxKeys) {
      truncated = true;
      break;
    }
    last = k;
    if (common !== undefined) {
      commonPrefixes.push(common);
    } else {
      const o = objects.get(k) as StoredObject;
      contents.push(`<Contents><Key>${enc(k)}</Key><LastModified>${o.lastModified.toISOString()}</LastModified><ETag>${esc(o.etag)}</ETag><Size>${o.body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`);
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
    if (n === undefined || etag === undefined) throw new S3Failure(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
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
