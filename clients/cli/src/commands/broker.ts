/**
 * `rill broker`: runs a broker (what `npm start` runs). Every setting of server/src/config.ts is a
 * flag here (`retention.ms` → `--retention-ms`) and an environment variable (`RILL_RETENTION_MS`).
 * The server is imported only when this command runs, so the client commands never load it.
 */
import { type Command, Option } from "commander";
import { ConfigError, envName, flagName, loadConfig, SETTINGS } from "../../../../server/src/config.js";

export function registerBrokerCommand(program: Command): void {
  const cmd = program
    .command("broker")
    .description("run a broker (embedded defaults: 127.0.0.1:50051, data in ./data)");
  const attributes = new Map<string, string>();
  for (const spec of SETTINGS) {
    const valueName = spec.kind === "bool" ? "true|false" : spec.kind === "int" ? "n" : "value";
    const option = new Option(`--${flagName(spec.key)} <${valueName}>`, spec.doc).env(envName(spec.key));
    if (spec.default !== undefined) option.default(undefined, spec.default);
    attributes.set(spec.key, option.attributeName());
    cmd.addOption(option);
  }
  cmd.action(async (opts: Record<string, string | undefined>) => {
    const flags: Record<string, string | undefined> = {};
    for (const [key, attribute] of attributes) flags[key] = opts[attribute];
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
