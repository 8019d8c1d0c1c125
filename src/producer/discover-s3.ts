/**
 * Inputs under an S3 prefix: `s3://bucket/catalog/` lists every image below it, one ListObjectsV2
 * page at a time in S3's key order; `s3://bucket/catalog/photo.jpg` names one image.
 */
import { ListObjectsV2Command, type ListObjectsV2CommandOutput } from "@aws-sdk/client-s3";
import type { AwsSettings } from "../runtime/aws.js";
import { ConfigError } from "../runtime/errors.js";
import { httpStatusOf, isAccessDenied, parseS3Uri, s3Client } from "../storage/s3.js";
import { imageExtensions, type InputItem, type StreamedInput } from "./discover.js";

export interface DiscoverS3Options {
  /** Keys asked for per ListObjectsV2 page (S3's maximum and default: 1000). */
  pageSize?: number;
  /** Only the keys after this one (S3's StartAfter): a listing resumed where an earlier one stopped. */
  startAfter?: string;
}

/** An image of a listing and its key (where a listing resumed after it starts). */
export interface ListedS3Input {
  item: StreamedInput;
  key: string;
}

const imagePattern = new RegExp(`\\.(${imageExtensions.join("|")})$`, "i");

/** Images under `uri` in S3's key order; path is `s3://bucket/key`, name the key relative to the prefix. */
export async function discoverS3Inputs(uri: string, aws: AwsSettings, options: DiscoverS3Options = {}): Promise<InputItem[]> {
  const items: InputItem[] = [];
  for await (const { item } of listS3Inputs(uri, aws, options)) items.push(item);
  return items;
}

/**
 * Images under `uri` one at a time, in S3's key order (UTF-8 bytes), one page in memory; each with
 * contentTag `s3:<ETag>:<Size>` from the listing. Hidden files and folders are skipped, as for
 * local folders. A URI naming one image yields that image (no request, no contentTag). A missing
 * bucket or a denied listing is a ConfigError.
 */
export async function* listS3Inputs(uri: string, aws: AwsSettings, options: DiscoverS3Options = {}): AsyncGenerator<ListedS3Input> {
  const { bucket, key } = parseS3Uri(uri, "inputs");
  if (key && !key.endsWith("/") && imagePattern.test(key)) {
    if (options.startAfter === undefined || Buffer.compare(Buffer.from(key), Buffer.from(options.startAfter)) > 0) {
      yield { item: { path: `s3://${bucket}/${key}`, name: key.slice(key.lastIndexOf("/") + 1) }, key };
    }
    return;
  }
  const prefix = key.replace(/\/+$/, "") ? `${key.replace(/\/+$/, "")}/` : "";
  const client = s3Client(aws);
  let token: string | undefined;
  let firstPage = true;
  do {
    let page: ListObjectsV2CommandOutput;
    try {
      page = await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          ...(token !== undefined ? { ContinuationToken: token } : options.startAfter !== undefined ? { StartAfter: options.startAfter } : {}),
          ...(options.pageSize ? { MaxKeys: options.pageSize } : {}),
        }),
      );
    } catch (err) {
      const name = (err as Error).name;
      if (name === "NoSuchBucket" || (httpStatusOf(err) === 404 && firstPage)) throw new ConfigError("inputs", `${uri}: bucket ${bucket} not found`, { cause: err });
      if (isAccessDenied(err)) throw new ConfigError("inputs", `${uri}: permission denied listing s3://${bucket}/${prefix}`, { cause: err });
      throw err;
    }
    firstPage = false;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
    if (page.IsTruncated && !token) throw new Error(`${uri}: ListObjectsV2 said the listing is truncated but gave no continuation token`);
    for (const obj of page.Contents ?? []) {
      const k = obj.Key;
      if (!k || !k.startsWith(prefix) || !imagePattern.test(k)) continue;
      const name = k.slice(prefix.length);
      // As for folders: hidden files and folders are skipped.
      if (name.split("/").some((s) => s.startsWith("."))) continue;
      const item: StreamedInput = { path: `s3://${bucket}/${k}`, name };
      if (obj.ETag !== undefined && obj.Size !== undefined) item.contentTag = `s3:${obj.ETag}:${obj.Size}`;
      yield { item, key: k };
    }
  } while (token);
}
