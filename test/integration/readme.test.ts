import { readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";

const ROOT = join(import.meta.dirname, "..", "..");
let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker();
});
afterAll(async () => {
  await tb?.stop();
});

describe("integration > README", () => {
  it("runs the TypeScript client example as written", async () => {
    // Ensures the README's client example works (only the broker address and import path change).
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example).toContain("createClient");
    const code = example!
      .replace('"./clients/ts/src/index.js"', JSON.stringify(join(ROOT, "clients/ts/src/index.js")))
      .replace('"127.0.0.1:50051"', JSON.stringify(tb.address));
    const file = join(import.meta.dirname, `.readme-example-${process.pid}.ts`);
    const lines: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(" "));
    });
    try {
      await writeFile(file, code);
      await import(file);
    } finally {
      log.mockRestore();
      await rm(file, { force: true });
    }
    expect(lines).toEqual(["sent 0 0", "read 0 0 hello"]);
  });
});
