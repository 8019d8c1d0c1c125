/** Reads an input image's bytes by reference, through the Store that holds it: a local path or a URI (`s3://bucket/key`). */
import type { AwsSettings } from "../runtime/aws.js";
import { InputError } from "../runtime/errors.js";
import { isStoreUri, storeOf, storeUriParts } from "./index.js";
import { StoreError } from "./store.js";

/** `aws` is used for inputs in cloud stores only (default: region from AWS_REGION, else us-east-1). */
export async function readInput(input: string, name = input, aws?: AwsSettings): Promise<Buffer> {
  const { store, key } = storeOf(input, aws);
  if (isStoreUri(input) && (!key || key.endsWith("/"))) throw new InputError(`${name}: is a folder, not an image (${input})`);
  try {
    return await store.read(key);
  } catch (err) {
    throw inputError(err, input, name) ?? err;
  }
}

/** A read that failed for a reason of the input's own, as the one line the image fails with; undefined for anything else. */
function inputError(err: unknown, input: string, name: string): InputError | undefined {
  if (err instanceof StoreError) {
    const said = err.miss === "no such bucket" ? `bucket ${storeUriParts(input).bucket} not found` : err.miss;
    return new InputError(`${name}: ${said} (${input})`, { cause: err });
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return new InputError(`${name}: file not found (${input})`);
  if (code === "EISDIR") return new InputError(`${name}: is a folder, not an image`);
  if (code === "EACCES" || code === "EPERM") return new InputError(`${name}: permission denied`);
  return undefined;
}
