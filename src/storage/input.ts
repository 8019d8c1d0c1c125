/** Reads an input image's bytes by reference: a local path or an `s3://bucket/key` URI. */
import { readFile } from "node:fs/promises";
import type { AwsSettings } from "../runtime/aws.js";
import { InputError } from "../runtime/errors.js";
import { defaultAwsSettings, getObjectBytes, isAccessDenied, isNotFound, isS3Uri, parseS3Uri, s3Client } from "./s3.js";

/** `aws` is used for s3:// inputs only (default: region from AWS_REGION, else us-east-1). */
export async function readInput(input: string, name = input, aws?: AwsSettings): Promise<Buffer> {
  if (isS3Uri(input)) return readS3Input(input, name, aws ?? defaultAwsSettings());
  try {
    return await readFile(input);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new InputError(`${name}: file not found (${input})`);
    if (code === "EISDIR") throw new InputError(`${name}: is a folder, not an image`);
    if (code === "EACCES" || code === "EPERM") throw new InputError(`${name}: permission denied`);
    throw err;
  }
}

async function readS3Input(input: string, name: string, aws: AwsSettings): Promise<Buffer> {
  const loc = parseS3Uri(input, "inputs");
  if (!loc.key || loc.key.endsWith("/")) throw new InputError(`${name}: is a folder, not an image (${input})`);
  try {
    return await getObjectBytes(s3Client(aws), loc);
  } catch (err) {
    if ((err as Error).name === "NoSuchBucket") throw new InputError(`${name}: bucket ${loc.bucket} not found (${input})`, { cause: err });
    if (isNotFound(err)) throw new InputError(`${name}: not found (${input})`, { cause: err });
    if (isAccessDenied(err)) throw new InputError(`${name}: permission denied (${input})`, { cause: err });
    throw err;
  }
}
