/** The metrics endpoint of a process that watches a run (`run`, `enqueue --wait`, `status --wait`). */
import type { Redis } from "ioredis";
import { startMetricsServer, watchQueues, type MetricsServer } from "../runtime/metrics.js";
import { openQueues } from "../pipeline/queues.js";

/**
 * The producer's metrics endpoint while it watches a run: the run's gauges (set by waitForRun)
 * and, given a connection, the queues' depths.
 */
export async function serveMetrics(config: { metricsPort?: number | undefined; metricsHost?: string | undefined }, redis?: Redis): Promise<MetricsServer> {
  const server = await startMetricsServer(config.metricsPort, config.metricsHost);
  process.stderr.write(`metrics on ${server.shown}\n`);
  if (!redis) return server;
  const queues = Object.values(openQueues(redis));
  const unwatch = watchQueues(queues);
  return {
    ...server,
    async close() {
      unwatch();
      await Promise.all(queues.map((q) => q.close()));
      await server.close();
    },
  };
}
