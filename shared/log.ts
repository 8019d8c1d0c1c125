/** Structured logs (JSON lines on stderr). MASKFLEET_LOG_LEVEL: trace|debug|info|warn|error|silent. */
import { pino } from "pino";

export const log = pino(
  { name: "maskfleet", level: process.env.MASKFLEET_LOG_LEVEL ?? "info", base: { pid: process.pid } },
  pino.destination(2),
);
