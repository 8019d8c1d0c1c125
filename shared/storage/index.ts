/** Opens the Store for an output root: a folder path (S3 comes with the AWS backends). */
import { LocalStore } from "./local.js";
import type { Store } from "./store.js";
import { ConfigError } from "../errors.js";

export type { Store } from "./store.js";
export { contentTypeOf } from "./store.js";

export function openStore(root: string): Store {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(root)) {
    throw new ConfigError("out", `${root}: only local folders are supported as stores in this version`);
  }
  return new LocalStore(root);
}
