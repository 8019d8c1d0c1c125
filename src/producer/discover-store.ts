/**
 * Inputs in a store (any registered scheme, src/storage/index.ts): `s3://bucket/catalog/` lists
 * every image below it, one page at a time in the store's key order; `s3://bucket/catalog/photo.jpg`
 * names one image.
 */
import type { AwsSettings } from "../runtime/aws.js";
import { ConfigError } from "../runtime/errors.js";
import { isStoreUri, storeOf, StoreError } from "../storage/index.js";
import { imageExtensions, type InputItem, type StreamedInput } from "./discover.js";

export interface DiscoverStoreOptions {
  /** Keys asked for per listing page (S3's maximum and default: 1000). */
  pageSize?: number;
  /** Only the keys after this one: a listing resumed where an earlier one stopped. */
  startAfter?: string;
}

/** An image of a listing and its key in its bucket (where a listing resumed after it starts). */
export interface ListedInput {
  item: StreamedInput;
  key: string;
}

const imagePattern = new RegExp(`\\.(${imageExtensions.join("|")})$`, "i");

/** Images under `uri` in the store's key order; path is `<scheme>://bucket/key`, name the key relative to the prefix. */
export async function discoverStoreInputs(uri: string, aws: AwsSettings, options: DiscoverStoreOptions = {}): Promise<InputItem[]> {
  const items: InputItem[] = [];
  for await (const { item } of listStoreInputs(uri, aws, options)) items.push(item);
  return items;
}

/**
 * Images under `uri` one at a time, in key order (UTF-8 bytes), one page in memory; each with the
 * content tag the listing gives (S3: `s3:<ETag>:<Size>`). Hidden files and folders are skipped, as
 * for local folders. A URI naming one image yields that image (no request, no contentTag). A
 * missing bucket or a denied listing is a ConfigError.
 */
export async function* listStoreInputs(uri: string, aws: AwsSettings, options: DiscoverStoreOptions = {}): AsyncGenerator<ListedInput> {
  if (!isStoreUri(uri)) throw new ConfigError("inputs", `${uri}: not a store URI`);
  const { store, key } = storeOf(uri, aws);
  const bucketRoot = store.root;
  if (key && !key.endsWith("/") && imagePattern.test(key)) {
    if (options.startAfter === undefined || Buffer.compare(Buffer.from(key), Buffer.from(options.startAfter)) > 0) {
      yield { item: { path: bucketRoot + key, name: key.slice(key.lastIndexOf("/") + 1) }, key };
    }
    return;
  }
  const prefix = key.replace(/\/+$/, "") ? `${key.replace(/\/+$/, "")}/` : "";
  try {
    for await (const entry of store.list(prefix, options)) {
      const name = entry.key.slice(prefix.length);
      // As for folders: hidden files and folders are skipped.
      if (!imagePattern.test(name) || name.split("/").some((s) => s.startsWith("."))) continue;
      const item: StreamedInput = { path: bucketRoot + entry.key, name };
      if (entry.contentTag !== undefined) item.contentTag = entry.contentTag;
      yield { item, key: entry.key };
    }
  } catch (err) {
    if (err instanceof StoreError) throw new ConfigError("inputs", `${uri}: ${err.message}`, { cause: err });
    throw err;
  }
}
