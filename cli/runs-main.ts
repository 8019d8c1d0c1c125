/** The run commands alone (see main.ts): the same commands, options and errors as in the whole program. */
import { Command } from "commander";
import { exitOnError } from "./exit.js";
import { addRunCommands } from "./runs.js";

const program = new Command("maskfleet").showHelpAfterError();
addRunCommands(program);
program.parseAsync(process.argv).catch(exitOnError);
