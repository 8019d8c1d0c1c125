/** `maskfleet ui`: the queue browser (src/runs/queue-browser.ts) until SIGINT/SIGTERM. */
import { Option, type Command } from "commander";
import { assertRedisReachable } from "../runtime/redis.js";
import { portNumber, redisCaFlag, redisFlag, redisUrlOf, type RedisFlags } from "./runs.js";

/** Not 3000: Grafana's port in deploy/docker-compose.yml. */
export const defaultUiPort = 3001;

export function addUiCommand(program: Command): void {
  program
    .command("ui")
    .description("browse the queues in a web UI (bull-board): jobs per stage and state; read-only unless --allow-retries")
    .addOption(new Option("--port <n>", "port (0 = any free port)").env("MASKFLEET_UI_PORT").argParser(portNumber).default(defaultUiPort))
    .addOption(new Option("--host <addr>", "address to listen on (0.0.0.0 in a container)").env("MASKFLEET_UI_HOST").default("127.0.0.1"))
    .addOption(redisFlag())
    .addOption(redisCaFlag())
    .option("--allow-retries", "let the UI retry failed jobs (nothing else: no clean, remove, promote or pause)")
    .action(async (flags: RedisFlags & { port: number; host: string; allowRetries?: boolean }) => {
      const redisUrl = redisUrlOf(flags);
      await assertRedisReachable(redisUrl);
      // Loaded here: the run commands share this entry and need none of bull-board.
      const { startQueueBrowser } = await import("../runs/queue-browser.js");
      const browser = await startQueueBrowser({ redisUrl, port: flags.port, host: flags.host, allowRetries: flags.allowRetries === true });
      process.stderr.write(`queue browser on ${browser.shown} (${flags.allowRetries ? "read-only but for retries of failed jobs" : "read-only"})\n`);
      const signal = await new Promise<string>((resolve) => process.once("SIGINT", resolve).once("SIGTERM", resolve));
      process.stderr.write(`${signal}: closing the queue browser\n`);
      await browser.close();
    });
}
