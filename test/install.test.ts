/**
 * `npm ci` with the network unreachable (a network namespace of its own, `unshare -n`), in a
 * scratch copy of package.json, package-lock.json and .npmrc, from the npm cache that set-up
 * filled: package.json's allowScripts keeps onnxruntime-node's CUDA download out, so it succeeds.
 * The same copy with the script allowed fails on the download: the namespace really is offline.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { repoRoot, scratchDir } from "./helpers.js";

/** Runs a command in a new network namespace (only a down loopback: no DNS, no route anywhere). */
function offline(cmd: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  // The parent's ONNXRUNTIME_NODE_INSTALL (set-up may export one) must not decide the outcome.
  const { ONNXRUNTIME_NODE_INSTALL: _a, ONNXRUNTIME_NODE_INSTALL_CUDA: _b, ...inherited } = process.env;
  return spawnSync("unshare", ["-n", ...cmd], { cwd, encoding: "utf8", env: { ...inherited, ...env }, timeout: 240_000 });
}

describe("npm ci, offline", { timeout: 300_000 }, () => {
  let dir: string;
  let install: ReturnType<typeof offline>;
  const bins = () => join(dir, "node_modules", "onnxruntime-node", "bin", "napi-v6", "linux", process.arch);

  before(async () => {
    dir = await scratchDir("npm-ci-offline");
    for (const file of ["package.json", "package-lock.json", ".npmrc"]) copyFileSync(join(repoRoot, file), join(dir, file));
    install = offline(["npm", "ci", "--no-audit", "--no-fund"], dir);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it("installs every package from the cache, without onnxruntime-node's CUDA download", () => {
    assert.equal(install.error, undefined, `unshare: ${install.error?.message}`);
    assert.equal(install.status, 0, `npm ci failed offline:\n${install.stderr.slice(-2000)}`);
    assert.match(install.stdout, /added \d+ packages/);
    // The CPU binding is there and loads; the CUDA provider was not fetched.
    assert.ok(existsSync(join(bins(), "onnxruntime_binding.node")));
    assert.ok(!existsSync(join(bins(), "libonnxruntime_providers_cuda.so")));
    const load = spawnSync(process.execPath, ["-e", "require('onnxruntime-node').listSupportedBackends().some((b) => b.name === 'cpu') || process.exit(1)"], {
      cwd: dir,
      encoding: "utf8",
    });
    assert.equal(load.status, 0, load.stderr);
    // Every install script is reviewed in allowScripts: npm has nothing to warn about.
    assert.doesNotMatch(install.stderr, /not yet covered by allowScripts/);
  });

  it("with onnxruntime-node's script allowed, the same offline install fails on its download", () => {
    assert.equal(install.status, 0);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { allowScripts: Record<string, boolean> };
    pkg.allowScripts["onnxruntime-node"] = true;
    writeFileSync(join(dir, "package.json"), JSON.stringify(pkg, null, 2));
    const rebuild = offline(["npm", "rebuild", "onnxruntime-node"], dir);
    assert.notEqual(rebuild.status, 0, "the download would have needed the network");
    assert.match(rebuild.stderr, /EAI_AGAIN|ENOTFOUND|ENETUNREACH|getaddrinfo/);
  });
});

describe("AWS SDK packages", () => {
  // "Together" is one copy of everything they share: the clients' own versions differ, since AWS
  // publishes a client only when it changes (client-rekognition's newest is 3.1142.0, the others' 3.1178.0).
  it("are pinned exactly, and the lock holds one copy of each shared @aws-sdk, @smithy and @aws-crypto package", () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const aws = Object.entries(pkg.dependencies).filter(([name]) => /^@(aws-sdk|smithy)\//.test(name));
    assert.ok(aws.length >= 5, aws.map(([n]) => n).join(", "));
    for (const [name, range] of aws) assert.match(range, /^\d+\.\d+\.\d+$/, `${name}: ${range} is not an exact version`);
    const lock = JSON.parse(readFileSync(join(repoRoot, "package-lock.json"), "utf8")) as { packages: Record<string, { version?: string }> };
    const versions = new Map<string, Set<string>>();
    for (const [path, entry] of Object.entries(lock.packages)) {
      const name = /node_modules\/(@(?:aws-sdk|smithy|aws-crypto)\/[^/]+)$/.exec(path)?.[1];
      if (name && entry.version) versions.set(name, (versions.get(name) ?? new Set()).add(entry.version));
    }
    assert.ok(versions.size >= 20, `${versions.size} packages`);
    assert.deepEqual(
      [...versions].filter(([, v]) => v.size > 1).map(([n, v]) => `${n}: ${[...v].join(", ")}`),
      [],
    );
  });
});
