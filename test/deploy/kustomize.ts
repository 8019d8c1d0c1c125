/**
 * The part of kustomize that deploy/k8s uses, so the tests can build every overlay without a
 * kustomize binary: resources (files and kustomization folders), JSON 6902 patches with a target,
 * namespace, images. Anything else in a kustomization.yaml is refused, so a feature this does not
 * know cannot pass unchecked (test/deploy.test.ts also compares with `kubectl kustomize` where that
 * is installed).
 */
import { readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseAllDocuments } from "yaml";

export type Manifest = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
};

interface PatchOp {
  op: string;
  path: string;
  value?: unknown;
}

const supported = new Set(["apiVersion", "kind", "namespace", "resources", "images", "patches"]);
const clusterScoped = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume", "StorageClass", "PriorityClass"]);

/** Every YAML document of a file (empty documents dropped); a syntax error throws naming the file. */
export function readYamlDocs(path: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(path, "utf8"));
  const out: unknown[] = [];
  for (const doc of docs) {
    if (doc.errors.length) throw new Error(`${path}: ${doc.errors[0]?.message}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

function asManifest(value: unknown, source: string): Manifest {
  const m = value as Partial<Manifest> | null;
  if (!m || typeof m !== "object" || typeof m.apiVersion !== "string" || typeof m.kind !== "string" || typeof m.metadata?.name !== "string") {
    throw new Error(`${source}: not a Kubernetes object (apiVersion, kind, metadata.name)`);
  }
  return m as Manifest;
}

/** `kustomize build dir`, for the features listed above. */
export function kustomize(dir: string): Manifest[] {
  const file = join(dir, "kustomization.yaml");
  const k = readYamlDocs(file)[0] as Record<string, unknown>;
  const unknown = Object.keys(k).filter((key) => !supported.has(key));
  if (unknown.length) throw new Error(`${file}: ${unknown.join(", ")} not supported by test/deploy/kustomize.ts`);

  let out: Manifest[] = [];
  for (const entry of (k.resources as string[] | undefined) ?? []) {
    const path = resolve(dir, entry);
    if (statSync(path).isDirectory()) out.push(...kustomize(path));
    else out.push(...readYamlDocs(path).map((d) => asManifest(d, path)));
  }
  for (const patch of (k.patches as { path: string; target: Record<string, string> }[] | undefined) ?? []) {
    const patchFile = resolve(dir, patch.path);
    const ops = readYamlDocs(patchFile)[0] as PatchOp[];
    if (!Array.isArray(ops)) throw new Error(`${patchFile}: only JSON 6902 patches (a list of operations) are supported`);
    const targets = out.filter((m) => matches(m, patch.target));
    if (targets.length === 0) throw new Error(`${patchFile}: no resource matches the target ${JSON.stringify(patch.target)}`);
    out = out.map((m) => (targets.includes(m) ? applyJsonPatch(m, ops, patchFile) : m));
  }
  const namespace = k.namespace as string | undefined;
  if (namespace) {
    out = out.map((m) => (clusterScoped.has(m.kind) ? m : { ...m, metadata: { ...m.metadata, namespace } }));
  }
  for (const image of (k.images as { name: string; newName?: string; newTag?: string; digest?: string }[] | undefined) ?? []) {
    out = out.map((m) => setImage(m, image));
  }
  return out;
}

function matches(m: Manifest, target: Record<string, string>): boolean {
  const [group, version] = m.apiVersion.includes("/") ? m.apiVersion.split("/") : ["", m.apiVersion];
  return (
    (target.group === undefined || target.group === group) &&
    (target.version === undefined || target.version === version) &&
    (target.kind === undefined || target.kind === m.kind) &&
    (target.name === undefined || target.name === m.metadata.name)
  );
}

/** RFC 6902 add / replace / remove on a copy; a path that is not there fails (as in kustomize). */
export function applyJsonPatch<T>(doc: T, ops: readonly PatchOp[], source = "patch"): T {
  const root = structuredClone(doc) as unknown;
  for (const { op, path, value } of ops) {
    const keys = path.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
    const last = keys.pop();
    if (last === undefined) throw new Error(`${source}: empty path`);
    let parent = root as Record<string, unknown> | unknown[];
    for (const key of keys) {
      const next = (parent as Record<string, unknown>)[key];
      if (next === null || typeof next !== "object") throw new Error(`${source}: ${op} ${path}: ${key} does not exist`);
      parent = next as Record<string, unknown> | unknown[];
    }
    if (Array.isArray(parent)) {
      const index = last === "-" && op === "add" ? parent.length : Number(last);
      if (!Number.isInteger(index) || index < 0 || index > parent.length || (op !== "add" && index === parent.length)) throw new Error(`${source}: ${op} ${path}: nothing there`);
      if (op === "add") parent.splice(index, 0, structuredClone(value));
      else if (op === "replace") parent[index] = structuredClone(value);
      else if (op === "remove") parent.splice(index, 1);
      else throw new Error(`${source}: operation ${op} not supported`);
    } else {
      if (op !== "add" && !(last in parent)) throw new Error(`${source}: ${op} ${path}: nothing there`);
      if (op === "add" || op === "replace") parent[last] = structuredClone(value);
      else if (op === "remove") delete parent[last];
      else throw new Error(`${source}: operation ${op} not supported`);
    }
  }
  return root as T;
}

interface Container {
  image?: string;
}

/** The images transformer: containers whose image (without tag or digest) is `name`. */
function setImage(m: Manifest, image: { name: string; newName?: string; newTag?: string; digest?: string }): Manifest {
  const podSpec = (m.spec as { template?: { spec?: { containers?: Container[]; initContainers?: Container[] } } } | undefined)?.template?.spec;
  if (!podSpec) return m;
  const copy = structuredClone(m);
  const spec = (copy.spec as { template: { spec: { containers?: Container[]; initContainers?: Container[] } } }).template.spec;
  for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
    const current = c.image ?? "";
    const [name, tag] = splitImage(current);
    if (name !== image.name) continue;
    const suffix = image.digest ? `@${image.digest}` : image.newTag ? `:${image.newTag}` : tag;
    c.image = `${image.newName ?? name}${suffix}`;
  }
  return copy;
}

/** "repo/name:tag" -> ["repo/name", ":tag"]; a registry port is not a tag. */
function splitImage(ref: string): [string, string] {
  const at = ref.indexOf("@");
  if (at >= 0) return [ref.slice(0, at), ref.slice(at)];
  const colon = ref.lastIndexOf(":");
  return colon > ref.lastIndexOf("/") ? [ref.slice(0, colon), ref.slice(colon)] : [ref, ""];
}
