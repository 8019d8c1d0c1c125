/** Inputs from anywhere: local files, folders, globs and manifests, and s3:// prefixes or objects. */
import type { AwsSettings } from "../shared/aws.js";
import { ConfigError } from "../shared/errors.js";
import { isS3Uri } from "../shared/storage/s3.js";
import { discoverInputs, type InputItem } from "./discover.js";
import { discoverS3Inputs } from "./discover-s3.js";

export async function findInputs(specs: readonly string[], aws: AwsSettings): Promise<InputItem[]> {
  const items: InputItem[] = [];
  for (const spec of specs) items.push(...(isS3Uri(spec) ? await discoverS3Inputs(spec, aws) : discoverInputs([spec])));
  if (items.length === 0) throw new ConfigError("inputs", `no images found in ${specs.join(" ")}`);
  return items;
}
