/** Reads an input image's bytes by reference (a local path; S3 comes with the AWS backends). */
import { readFile } from "node:fs/promises";
import { InputError } from "./errors.js";

export async function readInput(input: string, name = input): Promise<Buffer> {
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
