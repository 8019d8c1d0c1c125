/** The run commands and the queue browser alone (see main.ts): the same commands, options and errors as in the whole program. */
import { Command } from "commander";
import { exitOnError, usageExits } from "./exit.js";
import { warnUnknownEnv } from "./env.js";
import { addRunCommands } from "./runs.js";
import { addUiCommand } from "./ui.js";

const program = usageExits(new Command("maskfleet")).hook("preAction", () => warnUnknownEnv((line) => void process.stderr.write(`${line}\n`)));
addRunCommands(program);
addUiCommand(program);
program.parseAsync(process.argv).catch(exitOnError);
