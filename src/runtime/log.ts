/**
 * Structured logs on stderr: JSON lines, or readable lines (pino-pretty) when stderr is a terminal.
 * MASKFLEET_LOG_LEVEL: trace|debug|info|warn|error|silent.
 */
import { pino } from "pino";
import pretty from "pino-pretty";

const options = { name: "maskfleet", level: process.env.MASKFLEET_LOG_LEVEL ?? "info", base: { pid: process.pid } };

export const log = process.stderr.isTTY
  ? pino(options, pretty({ destination: 2, sync: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname,name" }))
  : pino(options, pino.destination(2));
