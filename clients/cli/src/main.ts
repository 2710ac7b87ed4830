/**
 * Entry point of the `rill` command (bin/rill.js imports the compiled file): runs the program on
 * process.argv when imported and exits with its code. Failures print one line, `rill: <what went
 * wrong>`, on stderr and exit 1 (2 for bad usage: commander's own usage errors, such as a missing
 * argument or an unknown option, and options whose value is invalid); a closed stdout (`rill consume t | head`) ends
 * the command quietly with 0.
 */
import { CommanderError } from "commander";
import { CliError, describeError } from "./context.js";
import { buildProgram } from "./program.js";

process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  process.stderr.write(`rill: cannot write output: ${e.message}\n`);
  process.exit(1);
});

/** Commands that keep running after their action returns (the broker serves until a signal). */
const LONG_RUNNING = new Set(["broker"]);
let command: string | undefined;

async function main(argv: string[]): Promise<number> {
  try {
    const program = buildProgram().hook("preAction", (_program, action) => {
      command = action.name();
    });
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    // Commander has printed its message (or the help) already; 0 for --help and --version.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    const code = e instanceof CliError ? e.exitCode : 1;
    process.stderr.write(`rill: ${describeError(e)}\n`);
    return code;
  }
}

const code = await main(process.argv);
// A long-running command (the broker) exits through its own signal handlers.
const keepRunning = command !== undefined && LONG_RUNNING.has(command) && code === 0;
if (!keepRunning) await exitWith(code);

async function exitWith(code: number): Promise<never> {
  // Let buffered output reach a pipe before exiting (exit discards what Node still holds).
  if (process.stdout.writableLength > 0) {
    await new Promise<void>((resolve) => {
      process.stdout.once("drain", resolve);
      process.stdout.once("close", resolve);
    });
  }
  process.exit(code);
}
