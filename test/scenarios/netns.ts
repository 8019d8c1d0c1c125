/**
 * Several "hosts" on one machine: Linux network namespaces (iproute2's `ip netns`) on one bridge.
 *
 *   root namespace: bridge <prefix>br, 10.77.N.1/24 (the test process: producer, stand-ins, scrapes)
 *     ├─ veth <prefix>v0 ── eth0 10.77.N.10  namespace <prefix>-<host 0>
 *     ├─ veth <prefix>v1 ── eth0 10.77.N.11  namespace <prefix>-<host 1>
 *     └─ ...
 *
 * Each namespace has its own loopback (up) and its eth0; it reaches the others and the root
 * namespace only through the bridge, so `cut(host)` (its bridge-side veth down) partitions it while
 * its processes live on. N and the prefix (`mf<N>`) come from the process id, so parallel runs do
 * not collide; the bridge's alias records the owning pid, and a topology whose owner is gone (a run
 * killed before its clean-up) is removed, processes and all, when the next one is created.
 *
 * Needs CAP_NET_ADMIN (root) and iproute2: `netnsUnavailable()` says why not, for a test to skip.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);
const ip = async (...args: string[]): Promise<string> => (await run("ip", args)).stdout;
const aliasPrefix = "maskfleet-test pid=";

export interface NetHost {
  name: string;
  /** The network namespace. */
  ns: string;
  /** Its address on the bridge (eth0 inside the namespace). */
  address: string;
  /** The root-namespace end of its veth pair, on the bridge. */
  veth: string;
}

export interface Topology {
  /** mf<N>: names of the bridge, veths and namespaces start with it. */
  prefix: string;
  bridge: string;
  /** The root namespace's address on the bridge (10.77.N.1): the test process's. */
  gateway: string;
  hosts: Record<string, NetHost>;
  /** The command prefix that runs a command in a host's namespace (`ip netns exec` execs it). */
  launcher(host: string): string[];
  /** Takes a host off the network: its veth's bridge end down. Its processes keep running. */
  cut(host: string): Promise<void>;
  /** SIGKILLs every process left in the namespaces, deletes them and the bridge. */
  close(): Promise<void>;
}

/** null when network namespaces can be made here; otherwise the reason (for t.skip). */
export async function netnsUnavailable(): Promise<string | null> {
  const probe = `mfprobe${process.pid % 100_000}`;
  try {
    await ip("netns", "add", probe);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") return "iproute2's `ip` is not installed";
    return `cannot create a network namespace (${(e.stderr ?? e.message).trim()}): needs root / CAP_NET_ADMIN`;
  }
  await ip("netns", "delete", probe).catch(() => undefined);
  return null;
}

interface LinkInfo {
  ifname: string;
  ifalias?: string;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

async function namespaces(): Promise<string[]> {
  const out = (await ip("-j", "netns", "list")).trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((n) => n.name) : [];
}

async function links(): Promise<LinkInfo[]> {
  return JSON.parse(await ip("-j", "link", "show")) as LinkInfo[];
}

/**
 * SIGKILLs the processes in the namespaces of `prefix`, deletes them, its veths and its bridge.
 * (The veths go explicitly: a deleted namespace lives on, with its veths, while sockets of its
 * killed processes linger, e.g. connections to the cut-off host.)
 */
async function removeTopology(prefix: string): Promise<void> {
  for (const ns of (await namespaces()).filter((n) => n.startsWith(`${prefix}-`))) {
    const pids = (await ip("netns", "pids", ns).catch(() => "")).split(/\s+/).filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    await ip("netns", "delete", ns).catch(() => undefined);
  }
  for (const l of (await links()).filter((x) => x.ifname === `${prefix}br` || new RegExp(`^${prefix}v\\d+$`).test(x.ifname))) {
    await ip("link", "delete", l.ifname).catch(() => undefined);
  }
}

/** The bridges of all topologies (this module's, by their alias), with the owner's pid. */
async function bridges(): Promise<{ prefix: string; owner: number }[]> {
  return (await links())
    .filter((l) => /^mf\d+br$/.test(l.ifname) && l.ifalias?.startsWith(aliasPrefix))
    .map((l) => ({ prefix: l.ifname.slice(0, -2), owner: Number(l.ifalias?.slice(aliasPrefix.length)) }));
}

/**
 * Creates the bridge and one namespace per host (in order: 10.77.N.10, .11, ...), after removing
 * topologies whose owner process is gone.
 */
export async function createTopology(hostNames: string[]): Promise<Topology> {
  const existing = await bridges();
  for (const b of existing.filter((x) => !alive(x.owner))) await removeTopology(b.prefix);
  const taken = new Set(existing.filter((x) => alive(x.owner)).map((x) => x.prefix));
  // Namespaces and veths of a topology whose bridge is already gone.
  const names = [...(await namespaces()), ...(await links()).map((l) => l.ifname)];
  const orphans = new Set(names.map((n) => /^(mf\d+)(?:-|v\d+$)/.exec(n)?.[1]).filter((p): p is string => p !== undefined && !taken.has(p)));
  for (const p of orphans) await removeTopology(p);

  let n = (process.pid % 250) + 1;
  while (taken.has(`mf${n}`)) n = (n % 250) + 1;
  const prefix = `mf${n}`;
  const bridge = `${prefix}br`;
  const subnet = `10.77.${n}`;
  const hosts: Record<string, NetHost> = {};
  hostNames.forEach((name, i) => (hosts[name] = { name, ns: `${prefix}-${name}`, address: `${subnet}.${10 + i}`, veth: `${prefix}v${i}` }));
  const host = (name: string): NetHost => {
    const h = hosts[name];
    if (!h) throw new Error(`no host ${name} in the topology (${hostNames.join(", ")})`);
    return h;
  };

  const topology: Topology = {
    prefix,
    bridge,
    gateway: `${subnet}.1`,
    hosts,
    launcher: (name) => ["ip", "netns", "exec", host(name).ns],
    cut: async (name) => void (await ip("link", "set", host(name).veth, "down")),
    close: () => removeTopology(prefix),
  };
  try {
    await ip("link", "add", bridge, "type", "bridge");
    await ip("link", "set", bridge, "alias", `${aliasPrefix}${process.pid}`);
    await ip("addr", "add", `${topology.gateway}/24`, "dev", bridge);
    await ip("link", "set", bridge, "up");
    for (const h of Object.values(hosts)) {
      await ip("netns", "add", h.ns);
      await ip("-n", h.ns, "link", "set", "lo", "up");
      await ip("link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns);
      await ip("link", "set", h.veth, "master", bridge, "up");
      await ip("-n", h.ns, "addr", "add", `${h.address}/24`, "dev", "eth0");
      await ip("-n", h.ns, "link", "set", "eth0", "up");
    }
  } catch (err) {
    await topology.close();
    throw err;
  }
  return topology;
}
