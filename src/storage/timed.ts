/** A Store whose reads, writes and existence checks are timed as metrics steps (store_read, ...). */
import { timeStep } from "../runtime/metrics.js";
import type { Store } from "./store.js";

export function timedStore(store: Store): Store {
  return {
    root: store.root,
    read: (key) => timeStep("store_read", () => store.read(key)),
    write: (key, body, contentType) => timeStep("store_write", () => store.write(key, body, contentType)),
    exists: (key) => timeStep("store_exists", () => store.exists(key)),
    head: (key) => timeStep("store_exists", () => store.head(key)),
    list: (prefix, options) => store.list(prefix, options),
    locate: (key) => store.locate(key),
  };
}
