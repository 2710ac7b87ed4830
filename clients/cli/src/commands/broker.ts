/**
 * `rill broker`: runs a broker (what `npm start` runs). Every setting of server/src/config.ts is a
 * flag here (`retention.ms` → `--retention-ms`) and an environment variable (`RILL_RETENTION_MS`).
 * The server is imported only when this command runs, so the client commands never load it.
 */
import { type Command, Option } from "commander";
import { ConfigError, envName, flagName, loadConfig, SETTINGS } from "../../../../server/src/config.js";

/** Global (client) options the broker has no use for: flag → attribute. */
const CLIENT_ONLY_OPTIONS = [
  ["--tls", "tls"],
  ["--tls-ca", "tlsCa"],
  ["--tls-server-name", "tlsServerName"],
  ["--token-file", "tokenFile"],
] as const;

export function registerBrokerCommand(program: Command): void {
  const cmd = program
    .command("broker")
    .description("run a broker (embedded defaults: 127.0.0.1:50051, data in ./data)");
  const attributes = new Map<string, string>();
  for (const spec of SETTINGS) {
    // A bool flag alone means true (`--insecure`); `--insecure false` is also accepted.
    const value = spec.kind === "bool" ? "[true|false]" : spec.kind === "int" ? "<n>" : "<value>";
    const option = new Option(`--${flagName(spec.key)} ${value}`, spec.doc).env(envName(spec.key));
    if (spec.default !== undefined) option.default(undefined, spec.default);
    attributes.set(spec.key, option.attributeName());
    cmd.addOption(option);
  }
  cmd.action(async (opts: Record<string, string | boolean | undefined>) => {
    // The program's client options are parsed wherever they appear, so `rill broker --tls-cert f`
    // reaches the program's --tls-cert (the client certificate): take it as the broker's own, and
    // refuse client-only options instead of ignoring them.
    for (const [flag, attribute] of CLIENT_ONLY_OPTIONS) {
      if (program.getOptionValueSource(attribute) === "cli") {
        process.stderr.write(
          `rill broker: ${flag} is a client option; the broker's TLS settings are --tls-cert, --tls-key, --tls-client-ca and --require-client-cert\n`,
        );
        process.exit(2);
      }
    }
    const flags: Record<string, string | undefined> = {};
    for (const [key, attribute] of attributes) {
      const fromProgram = program.getOptionValueSource(attribute) === "cli";
      const v = fromProgram ? (program.opts()[attribute] as string | undefined) : opts[attribute];
      flags[key] = v === true ? "true" : v === false ? "false" : v;
    }
    let config: ReturnType<typeof loadConfig>;
    try {
      // Commander already resolved flag > env; loadConfig applies defaults and validates.
      config = loadConfig(flags, {});
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`rill broker: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    const { runBroker } = await import("../../../../server/src/main.js");
    await runBroker(config);
  });
}
