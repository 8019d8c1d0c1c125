/**
 * The metrics endpoint as a network service: it says where it really listens, and idle or slow
 * connections can neither pile up (a cap, then dropped after a few seconds) nor starve the process
 * of file descriptors. Loopback only; every socket opened here is closed at the end.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import * as metrics from "../src/runtime/metrics.js";
import { startMetricsServer } from "../src/runtime/metrics.js";
import { poolStarting } from "../src/runtime/readiness.js";

const cap = 64;
import { sleep, until } from "./helpers.js";

/** Opens `n` TCP connections that send nothing; resolves when each has connected or been refused. */
async function idleSockets(port: number, n: number): Promise<{ sockets: Socket[]; open: () => number; closeAll: () => void }> {
  const sockets: Socket[] = [];
  const closed = new Set<Socket>();
  await Promise.all(
    Array.from({ length: n }, () => {
      const s = connect({ port, host: "127.0.0.1" });
      sockets.push(s);
      s.on("error", () => undefined);
      s.once("close", () => closed.add(s));
      return new Promise<void>((resolve) => {
        s.once("connect", () => resolve());
        s.once("close", () => resolve());
      });
    }),
  );
  return { sockets, open: () => sockets.length - closed.size, closeAll: () => sockets.forEach((s) => s.destroy()) };
}

describe("metrics server", () => {
  it("names the address it listens on; all interfaces are said to be so", async () => {
    assert.deepEqual(metrics.metricsAddress({ address: "0.0.0.0", family: "IPv4", port: 9464 }), {
      url: "http://0.0.0.0:9464/metrics",
      shown: "http://0.0.0.0:9464/metrics (all interfaces)",
    });
    assert.deepEqual(metrics.metricsAddress({ address: "::", family: "IPv6", port: 9464 }), {
      url: "http://[::]:9464/metrics",
      shown: "http://[::]:9464/metrics (all interfaces)",
    });
    assert.deepEqual(metrics.metricsAddress({ address: "::1", family: "IPv6", port: 80 }), { url: "http://[::1]:80/metrics", shown: "http://[::1]:80/metrics" });

    const server = await startMetricsServer(0, "127.0.0.2");
    try {
      assert.equal(server.url, `http://127.0.0.2:${server.port}/metrics`);
      assert.equal(server.shown, server.url);
      const res = await fetch(server.url);
      assert.equal(res.status, 200);
      await res.text();
    } finally {
      await server.close();
    }
  });

  it("holds at most its cap of idle connections, drops them after a few seconds, and still answers", async () => {
    const server = await startMetricsServer(0, "127.0.0.1");
    const conns = await idleSockets(server.port, 200);
    try {
      await sleep(300); // the server closes the ones over its cap as it accepts them
      const open = conns.open();
      assert.ok(open <= cap, `${open} idle connections held open, cap ${cap}`);
      assert.ok(open >= 32, `${open}: the ones under the cap are accepted`);
      assert.equal(metrics.METRICS_MAX_CONNECTIONS, cap);
      const held = await server.connections();
      assert.ok(held <= cap && held > 0, `server holds ${held}`);
      // Idle connections go after the idle timeout (5 s), freeing the slots for Prometheus.
      const t0 = Date.now();
      await until("idle connections dropped", async () => conns.open() === 0 && (await server.connections()) === 0, 12_000, 100);
      const waited = Date.now() - t0;
      assert.ok(waited < 8_000, `dropped after ${waited} ms`);
      const res = await fetch(server.url);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /^# TYPE maskfleet_jobs_completed_total counter$/m);
    } finally {
      conns.closeAll();
      await server.close();
    }
  });

  it("answers /healthz while the process runs, /ready once no pool is starting, 404 elsewhere", async () => {
    const server = await startMetricsServer(0, "127.0.0.1");
    const get = async (path: string, method = "GET") => {
      const res = await fetch(server.url.replace(/\/metrics$/, path), { method });
      return `${res.status} ${(await res.text()).trim()}`;
    };
    try {
      assert.equal(await get("/healthz"), "200 ok");
      assert.equal(await get("/ready"), "200 ready", "no pools: ready");
      const started = [poolStarting(), poolStarting()];
      assert.equal(await get("/ready"), "503 warming up");
      assert.equal(await get("/healthz"), "200 ok");
      started[0]?.();
      assert.equal(await get("/ready"), "503 warming up", "one pool still starting");
      started[1]?.();
      assert.equal(await get("/ready?probe=1"), "200 ready");
      assert.match(await get("/metrics"), /^200 # HELP/);
      assert.equal(await get("/"), "404 not found: GET /metrics, /ready or /healthz");
      assert.equal(await get("/ready", "POST"), "404 not found: GET /metrics, /ready or /healthz");
    } finally {
      await server.close();
    }
  });

  it("drops a client that sends its headers too slowly", async () => {
    const server = await startMetricsServer(0, "127.0.0.1", { headersTimeoutMs: 1000, idleTimeoutMs: 10_000 });
    const s = connect({ port: server.port, host: "127.0.0.1" });
    s.on("error", () => undefined);
    let closedAt = 0;
    s.once("close", () => (closedAt = Date.now()));
    const t0 = Date.now();
    const drip = setInterval(() => s.writable && s.write("X"), 200); // never finishes a header line: the idle timer never fires
    try {
      await new Promise<void>((r) => s.once("connect", () => r()));
      s.write("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ");
      await until("slow client dropped", () => closedAt > 0, 6_000, 50);
      assert.ok(closedAt - t0 < 4_000, `dropped after ${closedAt - t0} ms`);
    } finally {
      clearInterval(drip);
      s.destroy();
      await server.close();
    }
  });
});
