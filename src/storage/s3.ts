/**
 * S3 (or an S3-compatible store) as a Store, plus the S3 plumbing the rest of maskfleet shares:
 * `s3://bucket/key` parsing and one S3Client per AWS settings.
 *
 * Writes are atomic because S3's are: a PutObject or a completed multipart upload replaces the
 * object whole. Bodies over `multipartThreshold` go up in parts; any failure aborts the upload so
 * no parts are left behind (and billed).
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type ListObjectsV2CommandOutput,
} from "@aws-sdk/client-s3";
import { awsClientConfig, type AwsSettings } from "../runtime/aws.js";
import { ConfigError } from "../runtime/errors.js";
import { maskfleetVersion } from "../runtime/version.js";
import { contentTypeOf, StoreError, type ListOptions, type Store, type StoreEntry } from "./store.js";

export interface S3Location {
  bucket: string;
  /** The key or key prefix, possibly empty; never starts with '/'. */
  key: string;
}

const bucketName = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Whether a path or root is an `s3://` URI. */
export const isS3Uri = (spec: string): boolean => /^s3:\/\//i.test(spec);

/** Splits `s3://bucket/key` (the key may be empty). A bad URI is a ConfigError of `configKey`. */
export function parseS3Uri(uri: string, configKey = "s3"): S3Location {
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/s.exec(uri);
  if (!m) throw new ConfigError(configKey, `${uri}: not an S3 URI (expected s3://bucket/key)`);
  const bucket = m[1] ?? "";
  const key = m[2] ?? "";
  if (!bucket) throw new ConfigError(configKey, `${uri}: the S3 URI names no bucket`);
  if (!bucketName.test(bucket) || bucket.includes("..")) {
    throw new ConfigError(configKey, `${uri}: "${bucket}" is not a valid bucket name (3-63 lowercase letters, digits, dots and hyphens)`);
  }
  if (key.startsWith("/")) throw new ConfigError(configKey, `${uri}: the key starts with '/' (write s3://${bucket}/${key.replace(/^\/+/, "")})`);
  return { bucket, key };
}

/** The AWS settings used when a caller gives none. */
export function defaultAwsSettings(): AwsSettings {
  return { region: process.env.AWS_REGION ?? "us-east-1" };
}

const clients = new Map<string, S3Client>();

/** One S3Client per settings, created on first use and reused. */
export function s3Client(settings: AwsSettings): S3Client {
  const id = JSON.stringify([settings.region, settings.profile ?? null, settings.endpoints?.s3 ?? null]);
  let client = clients.get(id);
  if (!client) {
    // An endpoint override means an S3-compatible store (MinIO, a stand-in): those serve path-style URLs.
    const overridden = Boolean(settings.endpoints?.s3 || process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL);
    client = new S3Client({ ...awsClientConfig(settings, "s3"), ...(overridden ? { forcePathStyle: true } : {}) });
    clients.set(id, client);
  }
  return client;
}

/** The HTTP status of an AWS SDK error, when it has one. */
export function httpStatusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

export function isNotFound(err: unknown): boolean {
  const name = (err as Error | undefined)?.name;
  return name === "NoSuchKey" || name === "NotFound" || (httpStatusOf(err) === 404 && name !== "NoSuchBucket");
}

export function isAccessDenied(err: unknown): boolean {
  const name = (err as Error | undefined)?.name;
  return name === "AccessDenied" || name === "Forbidden" || httpStatusOf(err) === 403;
}

/** Reads an object whole; errors are the SDK's. */
export async function getObjectBytes(client: S3Client, loc: S3Location): Promise<Buffer> {
  const out = await client.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key }));
  if (!out.Body) return Buffer.alloc(0);
  return Buffer.from(await out.Body.transformToByteArray());
}

export interface S3StoreOptions {
  /** Bodies larger than this go up as a multipart upload (default 16 MiB). */
  multipartThreshold?: number;
  /** Size of each part but the last (default 8 MiB; at least 5 MiB, as S3 requires). */
  partSize?: number;
  /** Parts uploaded at once (default 4). */
  concurrency?: number;
  /** The config key a bad root is reported under (default: out). */
  configKey?: string;
  /** User metadata put on every object (default: maskfleet-version). */
  metadata?: Record<string, string>;
}

const MiB = 1024 * 1024;

export class S3Store implements Store {
  /** `s3://bucket/` or `s3://bucket/prefix/`. */
  readonly root: string;
  readonly bucket: string;
  /** '' or ends with '/'. */
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly threshold: number;
  private readonly partSize: number;
  private readonly concurrency: number;
  private readonly metadata: Record<string, string>;

  constructor(root: string, aws: AwsSettings = defaultAwsSettings(), options: S3StoreOptions = {}) {
    const { bucket, key } = parseS3Uri(root, options.configKey ?? "out");
    this.bucket = bucket;
    this.prefix = key.replace(/\/+$/, "") ? `${key.replace(/\/+$/, "")}/` : "";
    this.root = `s3://${bucket}/${this.prefix}`;
    this.threshold = options.multipartThreshold ?? 16 * MiB;
    this.partSize = Math.max(5 * MiB, options.partSize ?? 8 * MiB);
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.metadata = options.metadata ?? { "maskfleet-version": maskfleetVersion() };
    this.client = s3Client(aws);
  }

  /** The object key for a store key: never outside the root (no leading '/', no '.' or '..'); S3 keeps an empty segment (`a//b.jpg`) as it is. */
  objectKey(key: string): string {
    if (!key || key.startsWith("/") || key.split("/").some((s) => s === "." || s === "..")) {
      throw new Error(`key ${JSON.stringify(key)} is not a valid key under ${this.root}`);
    }
    return this.prefix + key;
  }

  locate(key: string): string {
    return `s3://${this.bucket}/${this.objectKey(key)}`;
  }

  async read(key: string): Promise<Buffer> {
    try {
      return await getObjectBytes(this.client, { bucket: this.bucket, key: this.objectKey(key) });
    } catch (err) {
      if ((err as Error).name === "NoSuchBucket") throw new StoreError("no such bucket", `${this.locate(key)}: bucket ${this.bucket} not found`, { cause: err });
      if (isNotFound(err)) throw new StoreError("not found", `${this.locate(key)}: not found`, { cause: err });
      if (isAccessDenied(err)) throw new StoreError("permission denied", `${this.locate(key)}: access denied`, { cause: err });
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== undefined;
  }

  async head(key: string): Promise<StoreEntry | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      const size = out.ContentLength ?? 0;
      return { key, size, ...(out.ETag !== undefined && { contentTag: `s3:${out.ETag}:${size}` }) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** ListObjectsV2, one page at a time; a missing bucket or a denied listing is a StoreError. */
  async *list(prefix: string, options: ListOptions = {}): AsyncGenerator<StoreEntry> {
    const under = this.prefix + prefix;
    let token: string | undefined;
    let firstPage = true;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: under,
            ...(token !== undefined ? { ContinuationToken: token } : options.startAfter !== undefined ? { StartAfter: this.prefix + options.startAfter } : {}),
            ...(options.pageSize ? { MaxKeys: options.pageSize } : {}),
          }),
        );
      } catch (err) {
        if ((err as Error).name === "NoSuchBucket" || (httpStatusOf(err) === 404 && firstPage))
          throw new StoreError("no such bucket", `bucket ${this.bucket} not found`, { cause: err });
        if (isAccessDenied(err)) throw new StoreError("permission denied", `permission denied listing s3://${this.bucket}/${under}`, { cause: err });
        throw err;
      }
      firstPage = false;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && !token) throw new Error(`s3://${this.bucket}/${under}: ListObjectsV2 said the listing is truncated but gave no continuation token`);
      for (const obj of page.Contents ?? []) {
        if (!obj.Key?.startsWith(under)) continue;
        const size = obj.Size ?? 0;
        yield { key: obj.Key.slice(this.prefix.length), size, ...(obj.ETag !== undefined && obj.Size !== undefined && { contentTag: `s3:${obj.ETag}:${obj.Size}` }) };
      }
    } while (token);
  }

  async write(key: string, body: Buffer, contentType = contentTypeOf(key)): Promise<void> {
    const target = { Bucket: this.bucket, Key: this.objectKey(key) };
    if (body.length <= this.threshold) {
      await this.client.send(new PutObjectCommand({ ...target, Body: body, ContentType: contentType, Metadata: this.metadata }));
      return;
    }
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ ...target, ContentType: contentType, Metadata: this.metadata }));
    if (!UploadId) throw new Error(`${this.locate(key)}: CreateMultipartUpload returned no upload id`);
    try {
      const count = Math.ceil(body.length / this.partSize);
      const parts: CompletedPart[] = new Array<CompletedPart>(count);
      let next = 0;
      let failing = false;
      const worker = async () => {
        while (next < count && !failing) {
          const i = next++;
          const Body = body.subarray(i * this.partSize, Math.min(body.length, (i + 1) * this.partSize));
          try {
            const { ETag } = await this.client.send(new UploadPartCommand({ ...target, UploadId, PartNumber: i + 1, Body }));
            parts[i] = { PartNumber: i + 1, ETag };
          } catch (err) {
            failing = true;
            throw err;
          }
        }
      };
      // Every worker runs to its end before the outcome is known, so no part is still in flight at the abort.
      const results = await Promise.allSettled(Array.from({ length: Math.min(this.concurrency, count) }, worker));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
      await this.client.send(new CompleteMultipartUploadCommand({ ...target, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      try {
        await this.client.send(new AbortMultipartUploadCommand({ ...target, UploadId }));
      } catch (abortErr) {
        const message = `${this.locate(key)}: multipart upload failed (${(err as Error).message}) and could not be aborted (upload id ${UploadId}: ${(abortErr as Error).message})`;
        throw new AggregateError([err, abortErr], message, { cause: abortErr });
      }
      throw err;
    }
  }
}
