/**
 * The store registry: which Store serves a root, by its URI scheme (no scheme: a local folder).
 * A new store is one file implementing Store and one line in `schemes`.
 */
import { basename, dirname } from "node:path";
import { LocalStore } from "./local.js";
import { S3Store } from "./s3.js";
import type { Store } from "./store.js";
import type { AwsSettings } from "../runtime/aws.js";
import { ConfigError } from "../runtime/errors.js";

export type { Store, StoreEntry } from "./store.js";
export { contentTypeOf, StoreError } from "./store.js";

/** `aws` is used by the stores of cloud services only (default: region from AWS_REGION, else us-east-1). */
type OpenStore = (root: string, aws: AwsSettings | undefined, configKey: string) => Store;

const schemes: Record<string, OpenStore> = {
  s3: (root, aws, configKey) => new S3Store(root, aws, { configKey }),
};

/** The URI scheme of a spec (`s3` of `s3://...`), lower-cased; undefined for a local path. */
export function schemeOf(spec: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1]?.toLowerCase();
}

/** Whether a spec names a store of a registered scheme (not a local path). */
export function isStoreUri(spec: string): boolean {
  const scheme = schemeOf(spec);
  return scheme !== undefined && scheme in schemes;
}

/** Opens the Store for a root: a URI of a registered scheme (`s3://bucket/prefix/`) or a local folder. */
export function openStore(root: string, aws?: AwsSettings, configKey = "out"): Store {
  const scheme = schemeOf(root);
  if (scheme === undefined) return new LocalStore(root);
  const open = schemes[scheme];
  if (!open)
    throw new ConfigError(
      configKey,
      `${root}: ${scheme}:// is not supported as a store (use ${Object.keys(schemes)
        .map((s) => `${s}://bucket/prefix/`)
        .join(", ")} or a local folder)`,
    );
  return open(root, aws, configKey);
}

/** A store URI's bucket and its whole key (`a//b.jpg` stays itself; '' for the bucket alone). */
export function storeUriParts(uri: string): { bucket: string; key: string } {
  const [, bucket = "", key = ""] = /^[^:]+:\/\/([^/]*)\/?(.*)$/.exec(uri) ?? [];
  return { bucket, key };
}

/** The store holding one object named by a path or URI, and the object's key in it: a URI's whole key, under its bucket's root. */
export function storeOf(spec: string, aws?: AwsSettings): { store: Store; key: string } {
  if (!isStoreUri(spec)) return { store: new LocalStore(dirname(spec)), key: basename(spec) };
  const { bucket, key } = storeUriParts(spec);
  return { store: openStore(`${schemeOf(spec)}://${bucket}/`, aws, "inputs"), key };
}
