/** Inputs from anywhere: local files, folders, globs and manifests, and s3:// prefixes or objects. */
import type { AwsSettings } from "../shared/aws.js";
import { ConfigError } from "../shared/errors.js";
import { isS3Uri } from "../shared/storage/s3.js";
import { appendAll, discover, formatSkipped, type Discovery, type InputItem } from "./discover.js";
import { discoverS3Inputs } from "./discover-s3.js";

export async function findInputs(specs: readonly string[], aws: AwsSettings): Promise<InputItem[]> {
  return (await findAllInputs(specs, aws)).items;
}

/**
 * The images of these specs, with what local discovery found and left out (and why) and the
 * symlinked folders it followed. No image at all is a ConfigError that says what was skipped.
 */
export async function findAllInputs(specs: readonly string[], aws: AwsSettings): Promise<Discovery> {
  const found: Discovery = { items: [], skipped: [], followed: [] };
  for (const spec of specs) {
    if (isS3Uri(spec)) {
      appendAll(found.items, await discoverS3Inputs(spec, aws));
      continue;
    }
    const local = discover([spec]);
    appendAll(found.items, local.items);
    appendAll(found.skipped, local.skipped);
    appendAll(found.followed, local.followed);
  }
  if (found.items.length === 0) {
    const skipped = formatSkipped(found.skipped);
    throw new ConfigError("inputs", `no images found in ${specs.join(" ")}${skipped ? ` (${skipped})` : ""}`);
  }
  return found;
}
