/**
 * Whether this process is ready for work (GET /ready): every worker pool started in it has warmed
 * up and takes jobs. A process without pools (a producer watching a run) is ready.
 */
const starting = new Set<symbol>();

/** Marks a pool as starting; the function returned marks it started. */
export function poolStarting(): () => void {
  const pool = Symbol("pool");
  starting.add(pool);
  return () => void starting.delete(pool);
}

export function isReady(): boolean {
  return starting.size === 0;
}
