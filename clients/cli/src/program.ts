/**
 * The `rill` program: global options and every subcommand. Built here, run by main.ts, so tests can
 * build it without running it.
 */
import { Command, Option } from "commander";
import { registerBenchCommand } from "./commands/bench.js";
import { registerBrokerCommand } from "./commands/broker.js";
import { registerConsumeCommand } from "./commands/consume.js";
import { registerGroupCommands } from "./commands/group.js";
import { registerProduceCommand } from "./commands/produce.js";
import { registerTopicCommands } from "./commands/topic.js";
import { DEFAULT_BROKER } from "./context.js";

export function buildProgram(): Command {
  const program = new Command("rill")
    .description("Rill: a log broker in the spirit of the 2011 Kafka paper, served over gRPC")
    .addOption(
      new Option("-b, --broker <host:port>", "broker to talk to").env("RILL_BROKER").default(DEFAULT_BROKER),
    )
    .option("-v, --verbose", "log the client's retries and reconnects to stderr")
    .option("--tls", "connect over TLS, trusting the system's root CAs (implied by the --tls-* options)")
    .option("--tls-ca <file>", "connect over TLS, trusting the CA certificate(s) in this PEM file")
    .option("--tls-cert <file>", "client certificate (PEM) for mutual TLS, with --tls-key")
    .option("--tls-key <file>", "private key (PEM) of --tls-cert")
    .option("--tls-server-name <name>", "name to check the broker's certificate against (default: the host)")
    .option("--token-file <file>", "send the bearer token in this file (default: the RILL_TOKEN variable)")
    .showHelpAfterError()
    // Usage errors (missing argument, unknown option...) throw a CommanderError instead of exiting
    // with commander's code 1; main.ts turns them into exit code 2. Subcommands inherit this.
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(s.startsWith("error:") ? `rill: ${s}` : s) });
  registerTopicCommands(program);
  registerProduceCommand(program);
  registerConsumeCommand(program);
  registerGroupCommands(program);
  registerBrokerCommand(program);
  registerBenchCommand(program);
  return program;
}
