/** Opens the Store for an output root: an `s3://bucket/prefix/` URI or a local folder. */
import { LocalStore } from "./local.js";
import { isS3Uri, S3Store } from "./s3.js";
import type { Store } from "./store.js";
import type { AwsSettings } from "../runtime/aws.js";
import { ConfigError } from "../runtime/errors.js";

export type { Store } from "./store.js";
export { contentTypeOf } from "./store.js";

/** `aws` is used for s3:// roots only (default: region from AWS_REGION, else us-east-1). */
export function openStore(root: string, aws?: AwsSettings): Store {
  if (isS3Uri(root)) return new S3Store(root, aws);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(root)?.[1];
  if (scheme) throw new ConfigError("out", `${root}: ${scheme}:// is not supported as a store (use s3://bucket/prefix/ or a local folder)`);
  return new LocalStore(root);
}
