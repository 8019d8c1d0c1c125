/**
 * Inputs under an S3 prefix: `s3://bucket/catalog/` lists every image below it (all pages),
 * `s3://bucket/catalog/photo.jpg` names one image.
 */
import { ListObjectsV2Command, type ListObjectsV2CommandOutput } from "@aws-sdk/client-s3";
import type { AwsSettings } from "../shared/aws.js";
import { ConfigError } from "../shared/errors.js";
import { httpStatusOf, isAccessDenied, parseS3Uri, s3Client } from "../shared/storage/s3.js";
import { imageExtensions, type InputItem } from "./discover.js";

export interface DiscoverS3Options {
  /** Keys asked for per ListObjectsV2 page (S3's maximum and default: 1000). */
  pageSize?: number;
}

const imagePattern = new RegExp(`\\.(${imageExtensions.join("|")})$`, "i");

/** Images under `uri`, sorted by name; path is `s3://bucket/key`, name the key relative to the prefix. */
export async function discoverS3Inputs(uri: string, aws: AwsSettings, options: DiscoverS3Options = {}): Promise<InputItem[]> {
  const { bucket, key } = parseS3Uri(uri, "inputs");
  if (key && !key.endsWith("/") && imagePattern.test(key)) {
    return [{ path: `s3://${bucket}/${key}`, name: key.slice(key.lastIndexOf("/") + 1) }];
  }
  const prefix = key.replace(/\/+$/, "") ? `${key.replace(/\/+$/, "")}/` : "";
  const client = s3Client(aws);
  const items: InputItem[] = [];
  let token: string | undefined;
  do {
    let page: ListObjectsV2CommandOutput;
    try {
      page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token, ...(options.pageSize ? { MaxKeys: options.pageSize } : {}) }),
      );
    } catch (err) {
      const name = (err as Error).name;
      if (name === "NoSuchBucket" || (httpStatusOf(err) === 404 && !token)) throw new ConfigError("inputs", `${uri}: bucket ${bucket} not found`, { cause: err });
      if (isAccessDenied(err)) throw new ConfigError("inputs", `${uri}: permission denied listing s3://${bucket}/${prefix}`, { cause: err });
      throw err;
    }
    for (const obj of page.Contents ?? []) {
      const k = obj.Key;
      if (!k || !k.startsWith(prefix) || !imagePattern.test(k)) continue;
      const name = k.slice(prefix.length);
      // As for folders: hidden files and folders are skipped.
      if (name.split("/").some((s) => s.startsWith("."))) continue;
      items.push({ path: `s3://${bucket}/${k}`, name });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
    if (page.IsTruncated && !token) throw new Error(`${uri}: ListObjectsV2 said the listing is truncated but gave no continuation token`);
  } while (token);
  return items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
