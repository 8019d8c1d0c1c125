/** Inputs from anywhere as arrays: local files, folders, globs and manifests, and s3:// prefixes or objects. */
import type { AwsSettings } from "../runtime/aws.js";
import { ConfigError } from "../runtime/errors.js";
import { formatSkipped, type Discovery, type InputItem } from "./discover.js";
import { streamInputs } from "./input-stream.js";

export async function findInputs(specs: readonly string[], aws: AwsSettings): Promise<InputItem[]> {
  return (await findAllInputs(specs, aws)).items;
}

/**
 * The images of these specs (streamInputs collected: its order, duplicates kept), with what local
 * discovery found and left out (and why) and the symlinked folders it followed, in walk order.
 * No image at all is a ConfigError that says what was skipped.
 */
export async function findAllInputs(specs: readonly string[], aws: AwsSettings): Promise<Discovery> {
  const found: Discovery = { items: [], skipped: [], followed: [] };
  const stream = streamInputs(specs, aws, { onSkipped: (s) => found.skipped.push(s), onFollowed: (f) => found.followed.push(f) });
  for await (const { item } of stream) found.items.push(item);
  if (found.items.length === 0) {
    const skipped = formatSkipped(found.skipped);
    throw new ConfigError("inputs", `no images found in ${specs.join(" ")}${skipped ? ` (${skipped})` : ""}`);
  }
  return found;
}
